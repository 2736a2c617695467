"""Stamps: balances per card, the stamps ledger, adding stamps and redeeming rewards.

Also home of what the ledger endpoints share: the card lookup (404 for another partner's
card), the LedgerEntry schema and `entry_json`, which writes an entry in that shape. Members are looked up with portal.api.members'
`member_or_404` (404 for another partner's or the other mode's member).
"""

from __future__ import annotations

from portal.api.errors import not_found
from portal.api.members import member_or_404
from portal.api.pagination import list_of, list_query, page
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Body, Integer, String
from portal.domain import catalog, ledger
from portal.domain.events import with_event
from portal.models import LedgerEntry, Redemption, isoformat

ID = String(min_length=1, max_length=64)
REFERENCE = String(max_length=ledger.REFERENCE_MAX, description="Your own reference, e.g. an order number.")

LEDGER_ENTRY = schema_ref("LedgerEntry", {
    "type": "object",
    "description": "An append-only stamps or cashback movement with the balance after it. "
                   "Credits have a positive amount, debits a negative one.",
    "required": ["id", "object", "kind", "member_id", "card_id", "amount", "balance_after", "source",
                 "reference", "description", "created_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^txn_"},
        "object": {"type": "string", "const": "ledger_entry"},
        "kind": {"type": "string", "enum": ["stamps", "cashback"]},
        "member_id": {"type": "string", "pattern": "^mem_"},
        "card_id": {"type": ["string", "null"], "description": "The card (stamps entries only)."},
        "amount": {"type": "integer"},
        "balance_after": {"type": "integer", "minimum": 0},
        "source": {"type": "string", "enum": list(ledger.SOURCES)},
        "reference": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "currency": {"type": "string", "description": "ISO 4217 (cashback entries only)."},
        "created_at": {"type": "string", "format": "date-time"},
    },
})

STAMP_BALANCES = schema_ref("StampBalances", {
    "type": "object",
    "required": ["object", "member_id", "data"],
    "properties": {
        "object": {"type": "string", "const": "stamp_balances"},
        "member_id": {"type": "string"},
        "data": {"type": "array", "items": {
            "type": "object",
            "required": ["card_id", "card_name", "balance"],
            "properties": {
                "card_id": {"type": "string", "pattern": "^card_"},
                "card_name": {"type": "string"},
                "balance": {"type": "integer", "minimum": 0},
            },
        }},
    },
})

REDEMPTION = schema_ref("Redemption", {
    "type": "object",
    "required": ["id", "object", "member_id", "reward_id", "card_id", "stamps_spent", "balance_after", "entry",
                 "created_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^red_"},
        "object": {"type": "string", "const": "redemption"},
        "member_id": {"type": "string"},
        "reward_id": {"type": "string"},
        "card_id": {"type": "string"},
        "stamps_spent": {"type": "integer", "minimum": 1},
        "balance_after": {"type": "integer", "minimum": 0},
        "entry": LEDGER_ENTRY,
        "created_at": {"type": "string", "format": "date-time"},
    },
})


def entry_json(entry: LedgerEntry, member_id: str, currency: str | None = None) -> dict:
    """A ledger entry as the API shows it (`txn_…`); `member_id` is the member's public id."""
    data = {
        "id": entry.public_id,
        "object": "ledger_entry",
        "kind": entry.kind,
        "member_id": member_id,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "source": entry.source,
        "reference": entry.reference,
        "description": entry.description,
        "created_at": isoformat(entry.created_at),
    }
    # card_id is in every entry (the schema requires it): null for cashback.
    data["card_id"] = entry.card.public_id if entry.kind == "stamps" and entry.card_id else None
    if entry.kind == "cashback" and currency:
        data["currency"] = currency
    return data


def redemption_json(redemption: Redemption, member_id: str) -> dict:
    """A reward redemption as the API shows it (`red_…`), with its ledger entry."""
    return {
        "id": redemption.public_id,
        "object": "redemption",
        "member_id": member_id,
        "reward_id": redemption.reward.public_id,
        "card_id": redemption.reward.card.public_id,
        "stamps_spent": -redemption.entry.amount,
        "balance_after": redemption.entry.balance_after,
        "entry": entry_json(redemption.entry, member_id),
        "created_at": isoformat(redemption.created_at),
    }


def card_or_404(call: ApiCall, card_id: str, param: str = "card_id", *, rewards: bool = True):
    """The caller's program card (with `.reward_list` unless `rewards=False`), or 404."""
    card = catalog.owned_card(call.partner_id, card_id, rewards=rewards)
    if card is None:
        raise not_found("card", param)
    return card


@endpoint("GET", "/members/<member_id>/stamps", scope="stamps_read", summary="Stamp balances",
          response=STAMP_BALANCES, errors={404: "No such member"})
def stamp_balance(call: ApiCall, member_id):
    """The member's stamp balance on every card of the program (0 where they have none)."""
    member = member_or_404(call, member_id)
    return {"object": "stamp_balances", "member_id": member.public_id, "data": ledger.stamp_balances(member)}


@endpoint("GET", "/members/<member_id>/stamps/history", scope="stamps_read", summary="Stamps history",
          query=list_query({"card_id": ID}), response=list_of(LEDGER_ENTRY), errors={404: "No such member"})
def stamp_history(call: ApiCall, member_id):
    """The member's stamps ledger entries, newest first (optionally of one `card_id`)."""
    member = member_or_404(call, member_id)
    card = card_or_404(call, call.query["card_id"]) if "card_id" in call.query else None
    return page(ledger.history_query(member, "stamps", card), LedgerEntry, call.query,
                serialize=lambda entry: entry_json(entry, member.public_id))


@endpoint("POST", "/members/<member_id>/stamps", scope="stamps_write", summary="Add stamps",
          body=Body({"card_id": ID, "count": Integer(minimum=1, maximum=ledger.STAMPS_PER_CALL_MAX),
                     "reference": REFERENCE}, required=("card_id", "count")),
          response=LEDGER_ENTRY, status=201, errors={404: "No such member or card"})
def add_stamps(call: ApiCall, member_id):
    """Add `count` (1-1000) stamps on `card_id`; returns the ledger entry with `balance_after`."""
    member = member_or_404(call, member_id)
    card = card_or_404(call, call.body["card_id"], rewards=False)
    _, data = with_event(call.application, call.mode, "stamps.added",
                         lambda: ledger.add_stamps(member, card, call.body["count"], reference=call.body.get("reference")),
                         lambda entry: entry_json(entry, member.public_id))
    return data


@endpoint("POST", "/members/<member_id>/stamps/redeem", scope="stamps_write", summary="Redeem a reward",
          body=Body({"card_id": ID, "reward_id": ID, "reference": REFERENCE}, required=("card_id", "reward_id")),
          response=REDEMPTION, status=201,
          errors={404: "No such member, card, or reward on that card",
                  409: "insufficient_stamps: the member has fewer stamps on the card than the reward costs"})
def redeem_reward(call: ApiCall, member_id):
    """Redeem `reward_id` of `card_id`, spending its `stamps_cost` stamps, exactly once."""
    member = member_or_404(call, member_id)
    card = card_or_404(call, call.body["card_id"])
    reward = next((r for r in card.reward_list if r.public_id == call.body["reward_id"]), None)
    if reward is None:
        raise not_found("reward on this card", "reward_id")
    reward.card = card
    _, data = with_event(call.application, call.mode, "stamps.redeemed",
                         lambda: ledger.redeem_reward(member, reward, reference=call.body.get("reference")),
                         lambda redemption: redemption_json(redemption, member.public_id))
    return data
