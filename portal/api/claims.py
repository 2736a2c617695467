"""Claims: a member asks for stamps or cashback (say, a purchase made without their card);
the partner approves (crediting the ledger exactly once) or rejects it."""

from __future__ import annotations

from portal.api.errors import invalid_request, not_found
from portal.api.members import member_or_404
from portal.api.pagination import list_of, list_query, page
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Body, Enum, Integer, String
from portal.api.stamps import ID, REFERENCE, card_or_404
from portal.domain import claims, ledger
from portal.domain.events import with_event
from portal.domain.members import find_member
from portal.models import Claim, isoformat

CLAIM = schema_ref("Claim", {
    "type": "object",
    "required": ["id", "object", "member_id", "kind", "card_id", "count", "amount", "reference", "note", "status",
                 "reason", "entry_id", "created_at", "decided_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^clm_"},
        "object": {"type": "string", "const": "claim"},
        "member_id": {"type": "string"},
        "kind": {"type": "string", "enum": list(claims.CLAIM_KINDS)},
        "card_id": {"type": ["string", "null"]},
        "count": {"type": ["integer", "null"]},
        "amount": {"type": ["integer", "null"]},
        "reference": {"type": ["string", "null"]},
        "note": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": list(claims.CLAIM_STATUSES)},
        "reason": {"type": ["string", "null"]},
        "entry_id": {"type": ["string", "null"], "description": "The ledger entry of an approved claim."},
        "created_at": {"type": "string", "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
    },
})

NOT_PENDING = "claim_not_pending: the claim was already approved or rejected"


def claim_json(claim: Claim) -> dict:
    """A claim as the API shows it (`clm_…`); `claim` comes from a query of portal.domain.claims."""
    return {
        "id": claim.public_id,
        "object": "claim",
        "member_id": claim.member.public_id,
        "kind": claim.kind,
        "card_id": claim.card.public_id if claim.card_id else None,
        "count": claim.count,
        "amount": claim.amount,
        "reference": claim.reference,
        "note": claim.note,
        "status": claim.status,
        "reason": claim.reason,
        "entry_id": claim.entry.public_id if claim.entry_id else None,
        "created_at": isoformat(claim.created_at),
        "decided_at": isoformat(claim.decided_at),
    }


def _claim_or_404(call: ApiCall, claim_id: str) -> Claim:
    claim = claims.owned_claim(call.partner_id, call.mode, claim_id)
    if claim is None:
        raise not_found("claim")
    return claim


@endpoint("POST", "/claims", scope="claim_write", summary="File a claim",
          body=Body({
              "member_id": ID,
              "kind": Enum(*claims.CLAIM_KINDS, description="Follows from the fields when left out."),
              "card_id": ID,
              "count": Integer(minimum=1, maximum=ledger.STAMPS_PER_CALL_MAX),
              "amount": Integer(minimum=1, maximum=ledger.CASHBACK_AMOUNT_MAX),
              "reference": REFERENCE,
              "note": String(max_length=claims.NOTE_MAX),
          }, required=("member_id",),
              description="Stamps: `card_id` and `count`. Cashback: `amount` (minor units)."),
          response=CLAIM, status=201, errors={404: "No such member or card"})
def create_claim(call: ApiCall):
    """File a member's pending request for `count` stamps on `card_id`, or for cashback `amount`."""
    body = call.body
    kind = body.get("kind")
    if kind is None:
        if "amount" in body and ("card_id" in body or "count" in body):
            raise invalid_request("A claim is for stamps (card_id and count) or for cashback (amount), not both.",
                                  "amount")
        kind = "cashback" if "amount" in body else "stamps"
    if kind == "stamps":
        for name in ("card_id", "count"):
            if name not in body:
                raise invalid_request(f"A stamps claim needs {name}.", name)
        if "amount" in body:
            raise invalid_request("A stamps claim has no amount.", "amount")
    else:
        if "amount" not in body:
            raise invalid_request("A cashback claim needs amount.", "amount")
        for name in ("card_id", "count"):
            if name in body:
                raise invalid_request(f"A cashback claim has no {name}.", name)
    member = member_or_404(call, body["member_id"])
    card = card_or_404(call, body["card_id"]) if kind == "stamps" else None
    _, data = with_event(call.application, call.mode, "claim.created",
                         lambda: claims.create_claim(member, kind, card=card, count=body.get("count"),
                                                     amount=body.get("amount"), reference=body.get("reference"),
                                                     note=body.get("note")),
                         claim_json)
    return data


@endpoint("GET", "/claims", scope="claim_write", summary="List claims",
          query=list_query({"status": Enum(*claims.CLAIM_STATUSES), "member_id": ID}),
          response=list_of(CLAIM))
def list_claims(call: ApiCall):
    """Claims, newest first, optionally only one `status` or one member's."""
    member = None
    if "member_id" in call.query:
        member = find_member(call.partner_id, call.mode, call.query["member_id"])
        if member is None:  # nobody's claims: an empty list, whoever's id it may be
            return {"object": "list", "data": [], "has_more": False}
    query = claims.claims_query(call.partner_id, call.mode, status=call.query.get("status"), member=member)
    return page(query, Claim, call.query, serialize=claim_json,
                anchor_scope=Claim.select(Claim.id).where((Claim.partner == call.partner_id) & (Claim.mode == call.mode)))


@endpoint("GET", "/claims/<claim_id>", scope="claim_write", summary="Get a claim", response=CLAIM,
          errors={404: "No such claim"})
def get_claim(call: ApiCall, claim_id):
    """One claim."""
    return claim_json(_claim_or_404(call, claim_id))


@endpoint("POST", "/claims/<claim_id>/approve", scope="claim_write", summary="Approve a claim", response=CLAIM,
          errors={404: "No such claim", 409: NOT_PENDING})
def approve_claim(call: ApiCall, claim_id):
    """Approve a pending claim: its stamps or cashback are credited, exactly once."""
    claim = _claim_or_404(call, claim_id)
    return with_event(call.application, call.mode, "claim.approved", lambda: claims.approve_claim(claim), claim_json)[1]


@endpoint("POST", "/claims/<claim_id>/reject", scope="claim_write", summary="Reject a claim",
          body=Body({"reason": String(max_length=claims.REASON_MAX)}), response=CLAIM,
          errors={404: "No such claim", 409: NOT_PENDING})
def reject_claim(call: ApiCall, claim_id):
    """Reject a pending claim, with an optional `reason` the member may be shown."""
    claim = _claim_or_404(call, claim_id)
    return with_event(call.application, call.mode, "claim.rejected",
                      lambda: claims.reject_claim(claim, call.body.get("reason")), claim_json)[1]
