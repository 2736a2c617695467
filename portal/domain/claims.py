"""Claims: a member's request for stamps or cashback, decided once by the partner.

A claim goes `pending → approved | rejected`, and only from `pending`. The decision is a
conditional UPDATE (`… WHERE status = 'pending'`) in the same write transaction as the
ledger entry an approval makes, so however many approvals race, exactly one changes the
row and credits the ledger; the others get a Conflict `claim_not_pending` and write nothing.
"""

from __future__ import annotations

import peewee

from portal.db import write_transaction
from portal.domain import Conflict, Invalid, ledger
from portal.models import Card, Claim, LedgerEntry, Member, utcnow

CLAIM_KINDS = ("stamps", "cashback")
CLAIM_STATUSES = ("pending", "approved", "rejected")
REFERENCE_MAX = 128
NOTE_MAX = 500
REASON_MAX = 500


def create_claim(member: Member, kind: str, *, card: Card | None = None, count: int | None = None,
                 amount: int | None = None, reference: str | None = None, note: str | None = None) -> Claim:
    """File a pending claim for `count` stamps on `card`, or for `amount` of cashback.

    The caller has checked the shape (the API's schema); this checks the rule: a stamps
    claim names a card and a count, a cashback claim an amount, and nothing else.
    """
    if kind == "stamps":
        if card is None or count is None or amount is not None:
            raise Invalid("A stamps claim has card_id and count, and no amount.", field="kind")
        ledger.check_stamp_count(count)
        ledger.check_same_partner(member, card)
    elif kind == "cashback":
        if amount is None or card is not None or count is not None:
            raise Invalid("A cashback claim has amount, and no card_id or count.", field="kind")
        ledger.check_cashback_amount(amount)
    else:
        raise Invalid(f"kind must be one of {', '.join(CLAIM_KINDS)}.", field="kind")
    claim = Claim.create(
        partner=member.partner_id, mode=member.mode, member=member, kind=kind, card=card,
        count=count, amount=amount, reference=reference or None, note=note or None,
    )
    return _with_relations(Claim.select()).where(Claim.id == claim.id).get()


def approve_claim(claim: Claim) -> Claim:
    """Approve a pending claim and credit its stamps or cashback, exactly once.

    Raises Conflict `claim_not_pending` (writing nothing) when it was already decided.
    """
    with write_transaction():
        _decide(claim, "approved", reason=None)
        member = Member.get_by_id(claim.member_id)
        description = f"Claim {claim.public_id}"
        if claim.kind == "stamps":
            entry = ledger._credit_stamps(member, Card.get_by_id(claim.card_id), claim.count, source="claim",
                                          reference=claim.reference, description=description)
        else:
            entry = ledger._credit_cashback(member, claim.amount, source="claim", reference=claim.reference,
                                            description=description)
        Claim.update(entry=entry).where(Claim.id == claim.id).execute()
    return _with_relations(Claim.select()).where(Claim.id == claim.id).get()


def reject_claim(claim: Claim, reason: str | None = None) -> Claim:
    """Reject a pending claim with an optional reason; Conflict `claim_not_pending` otherwise."""
    with write_transaction():
        _decide(claim, "rejected", reason=reason or None)
    return _with_relations(Claim.select()).where(Claim.id == claim.id).get()


def _decide(claim: Claim, status: str, *, reason: str | None) -> None:
    changed = (
        Claim.update(status=status, reason=reason, decided_at=utcnow())
        .where((Claim.id == claim.id) & (Claim.status == "pending"))
        .execute()
    )
    if not changed:
        current = Claim.select(Claim.status).where(Claim.id == claim.id).scalar() or "gone"
        raise Conflict(f"This claim is already {current}; only a pending claim can be decided.",
                       code="claim_not_pending")


def owned_claim(partner, mode: str, public_id: str) -> Claim | None:
    """The claim with this public id if it is this partner's and of this mode, else None."""
    return _with_relations(Claim.select()).where(
        (Claim.public_id == str(public_id)) & (Claim.partner == partner) & (Claim.mode == mode)).first()


def claims_query(partner, mode: str, *, status: str | None = None, member: Member | None = None):
    """The partner's claims of one mode, newest first, optionally filtered."""
    query = _with_relations(Claim.select()).where((Claim.partner == partner) & (Claim.mode == mode))
    if status is not None:
        query = query.where(Claim.status == status)
    if member is not None:
        query = query.where(Claim.member == member)
    return query.order_by(Claim.id.desc())


def _with_relations(query):
    """Join what the API shows of a claim (portal.api.claims), so a list of claims is one query."""
    return (
        query.select_extend(Member.id, Member.public_id, Card.id, Card.public_id, LedgerEntry.id, LedgerEntry.public_id)
        .join(Member).switch(Claim)
        .join(Card, peewee.JOIN.LEFT_OUTER).switch(Claim)
        .join(LedgerEntry, peewee.JOIN.LEFT_OUTER, on=(Claim.entry == LedgerEntry.id))
    )
