"""Claims are decided once: pending → approved | rejected, the approval's ledger entry in
the same transaction, exactly once even when approvals race."""

from __future__ import annotations

import pytest

from portal.api.claims import claim_json
from portal.domain import Conflict, Invalid, claims, ledger
from portal.models import Claim, LedgerEntry, StampBalance
from tests.domain.test_ledger import refuse_inserts, run_concurrently

pytestmark = pytest.mark.both_engines


def test_approving_a_stamps_claim_credits_the_card_once(card, make_member):
    member = make_member(email="ann@example.com")
    claim = claims.create_claim(member, "stamps", card=card, count=4, reference="receipt-7", note="forgot my card")
    assert claim.public_id.startswith("clm_") and claim.status == "pending"

    approved = claims.approve_claim(claim)

    assert approved.status == "approved" and approved.decided_at is not None
    data = claim_json(approved)
    assert data["entry_id"].startswith("txn_") and data["card_id"] == card.public_id
    assert StampBalance.get(member=member, card=card).balance == 4
    entry = LedgerEntry.get(LedgerEntry.member == member)
    assert (entry.source, entry.reference, entry.amount) == ("claim", "receipt-7", 4)


def test_a_claim_approved_twice_is_refused_the_second_time_and_applied_once(make_member):
    member = make_member(email="ann@example.com")
    claim = claims.create_claim(member, "cashback", amount=250)
    claims.approve_claim(claim)

    with pytest.raises(Conflict) as refused:
        claims.approve_claim(claim)

    assert refused.value.code == "claim_not_pending" and "already approved" in refused.value.message
    assert ledger.cashback_balance(member) == 250
    assert LedgerEntry.select().count() == 1


def test_a_rejected_claim_cannot_be_approved(make_member):
    member = make_member(email="ann@example.com")
    claim = claims.create_claim(member, "cashback", amount=250)
    rejected = claims.reject_claim(claim, "no receipt")
    assert (rejected.status, rejected.reason) == ("rejected", "no receipt")
    with pytest.raises(Conflict):
        claims.approve_claim(claim)
    with pytest.raises(Conflict):
        claims.reject_claim(claim)
    assert ledger.cashback_balance(member) == 0 and LedgerEntry.select().count() == 0


def test_racing_approvals_apply_the_claim_exactly_once(make_member):
    member = make_member(email="ann@example.com")
    claim = claims.create_claim(member, "cashback", amount=100)

    results = run_concurrently(12, lambda: claims.approve_claim(claim))

    assert sum(isinstance(r, Claim) for r in results) == 1
    assert sum(isinstance(r, Conflict) and r.code == "claim_not_pending" for r in results) == 11, results
    assert ledger.cashback_balance(member) == 100
    assert LedgerEntry.select().count() == 1


def test_an_approval_whose_ledger_write_fails_leaves_the_claim_pending(make_member):
    member = make_member(email="ann@example.com")
    claim = claims.create_claim(member, "cashback", amount=100)
    refuse_inserts("ledger_entry")
    with pytest.raises(Exception):
        claims.approve_claim(claim)
    assert Claim.get_by_id(claim.id).status == "pending"
    assert ledger.cashback_balance(member) == 0


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("fields", [
    {"kind": "stamps", "count": 3},
    {"kind": "cashback"},
    {"kind": "cashback", "amount": 0},
    {"kind": "gift", "amount": 5},
])
def test_a_claim_must_name_what_it_asks_for(make_member, fields):
    with pytest.raises(Invalid):
        claims.create_claim(make_member(email="ann@example.com"), **fields)


def test_claims_are_listed_per_partner_mode_and_status(card, make_member, partner):
    ann = make_member(email="ann@example.com")
    prod_ann = make_member(email="ann@example.com", mode="prod")
    first = claims.create_claim(ann, "cashback", amount=1)
    claims.create_claim(ann, "stamps", card=card, count=1)
    claims.create_claim(prod_ann, "cashback", amount=1)
    claims.approve_claim(first)
    assert [c.public_id for c in claims.claims_query(partner, "test", status="approved")] == [first.public_id]
    assert len(list(claims.claims_query(partner, "test"))) == 2
    assert claims.owned_claim(partner, "prod", first.public_id) is None
