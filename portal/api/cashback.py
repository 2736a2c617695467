"""Cashback: the balance, its ledger, credits and redemptions, in minor units of the
program's currency."""

from __future__ import annotations

from portal.api.members import member_or_404
from portal.api.pagination import list_of, list_query, page
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Body, Integer, String
from portal.api.stamps import LEDGER_ENTRY, REFERENCE, entry_json
from portal.domain import catalog, ledger
from portal.domain.events import with_event
from portal.models import LedgerEntry

AMOUNT = Integer(minimum=1, maximum=ledger.CASHBACK_AMOUNT_MAX,
                 description="Minor units of the program's currency (cents for EUR), > 0.")
DESCRIPTION = String(max_length=ledger.DESCRIPTION_MAX, description="Shown to the member in their history.")

CASHBACK_BALANCE = schema_ref("CashbackBalance", {
    "type": "object",
    "required": ["object", "member_id", "balance", "currency"],
    "properties": {
        "object": {"type": "string", "const": "cashback_balance"},
        "member_id": {"type": "string"},
        "balance": {"type": "integer", "minimum": 0, "description": "Minor units of `currency`."},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
})

MOVEMENT = Body({"amount": AMOUNT, "reference": REFERENCE, "description": DESCRIPTION}, required=("amount",))


def _currency(call: ApiCall) -> str:
    return catalog.currency_of(call.partner_id)


@endpoint("GET", "/members/<member_id>/cashback", scope="cashback_read", summary="Cashback balance",
          response=CASHBACK_BALANCE, errors={404: "No such member"})
def cashback_balance(call: ApiCall, member_id):
    """The member's cashback `balance` in minor units of the program's `currency`."""
    member = member_or_404(call, member_id)
    return {"object": "cashback_balance", "member_id": member.public_id, "balance": member.cashback_balance,
            "currency": _currency(call)}


@endpoint("GET", "/members/<member_id>/cashback/history", scope="cashback_read", summary="Cashback history",
          query=list_query(), response=list_of(LEDGER_ENTRY), errors={404: "No such member"})
def cashback_history(call: ApiCall, member_id):
    """The member's cashback ledger entries, newest first."""
    member = member_or_404(call, member_id)
    currency = _currency(call)
    return page(ledger.history_query(member, "cashback"), LedgerEntry, call.query,
                serialize=lambda entry: entry_json(entry, member.public_id, currency))


@endpoint("POST", "/members/<member_id>/cashback/credit", scope="cashback_write", summary="Credit cashback",
          body=MOVEMENT, response=LEDGER_ENTRY, status=201, errors={404: "No such member"})
def credit_cashback(call: ApiCall, member_id):
    """Credit `amount` (> 0, minor units); returns the ledger entry with `balance_after`."""
    member = member_or_404(call, member_id)
    _, data = with_event(call.application, call.mode, "cashback.credited",
                         lambda: ledger.credit_cashback(member, call.body["amount"], reference=call.body.get("reference"),
                                                        description=call.body.get("description")),
                         lambda entry: entry_json(entry, member.public_id, _currency(call)))
    return data


@endpoint("POST", "/members/<member_id>/cashback/redeem", scope="cashback_write", summary="Redeem cashback",
          body=MOVEMENT, response=LEDGER_ENTRY, status=201,
          errors={404: "No such member", 409: "insufficient_balance: the balance is lower than `amount`"})
def redeem_cashback(call: ApiCall, member_id):
    """Debit `amount` (minor units) from the balance, which never goes below zero."""
    member = member_or_404(call, member_id)
    _, data = with_event(call.application, call.mode, "cashback.redeemed",
                         lambda: ledger.redeem_cashback(member, call.body["amount"], reference=call.body.get("reference"),
                                                        description=call.body.get("description")),
                         lambda entry: entry_json(entry, member.public_id, _currency(call)))
    return data
