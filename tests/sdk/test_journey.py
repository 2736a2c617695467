"""A partner's integration, end to end through every resource method of the SDK, against
the live server."""

from __future__ import annotations

import secrets

import pytest
from loyalty_sdk import (
    Card,
    CashbackBalance,
    Claim,
    ConflictError,
    InvalidRequestError,
    LedgerEntry,
    Member,
    NotFoundError,
    Redemption,
    StampBalances,
)


def _email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}@example.com"


def test_members_create_get_update_list_validate_and_verify_by_otp(client):
    email = _email("ana")
    external = "crm-" + secrets.token_hex(4)
    member = client.members.create(email=email, name="Ana", external_id=external)
    assert isinstance(member, Member)
    assert member.id.startswith("mem_") and member.email == email and member.referral_code
    assert member.verified is False and member.raw["object"] == "member"

    assert client.members.get(member.id) == member
    updated = client.members.update(member.id, name="Ana Lima", phone="+442079460958")
    assert updated.name == "Ana Lima" and updated.phone == "+442079460958" and updated.email == email

    assert [m.id for m in client.members.list(external_id=external)] == [member.id]
    validation = client.members.validate(email=email)
    assert validation.valid is True and validation.member_id == member.id and validation.verified is False
    assert client.members.validate(email=_email("nobody")).valid is False

    sent = client.members.request_otp(member.id, channel="email")
    assert sent.member_id == member.id and sent.channel == "email" and sent.delivered is False
    verified = client.members.verify_otp(member.id, "000000")  # test mode: always 000000
    assert verified.verified is True and verified.member.verified is True
    assert client.members.get(member.id).verified is True


def test_member_lists_follow_pages(client):
    tag = "page-" + secrets.token_hex(3)
    created = [client.members.create(email=_email(tag), external_id=f"{tag}-{n}") for n in range(5)]
    everyone = client.members.list(page_size=2)
    newest_first = [m.id for m in everyone][:5]
    assert newest_first == [m.id for m in reversed(created)]
    assert len(list(client.members.list(page_size=2, limit=3))) == 3


def test_cards_list_and_get(client, program):
    cards = list(client.cards.list())
    card = next(c for c in cards if c.id == program["card_id"])
    assert isinstance(card, Card) and card.name == "SDK test card"
    assert [r.stamps_cost for r in card.rewards] == [3, 8]
    assert client.cards.get(program["card_id"]).rewards[0].id == program["small_reward"]


def test_stamps_add_balance_history_and_redeem(client, program):
    member = client.members.create(email=_email("stamps"))
    card_id = program["card_id"]
    assert client.stamps.balance(member.id).for_card(card_id) == 0

    entry = client.stamps.add(member.id, card_id=card_id, count=4, reference="visit-1")
    assert isinstance(entry, LedgerEntry) and entry.amount == 4 and entry.balance_after == 4
    balances = client.stamps.balance(member.id)
    assert isinstance(balances, StampBalances) and balances.for_card(card_id) == 4

    redemption = client.stamps.redeem(member.id, card_id=card_id, reward_id=program["small_reward"])
    assert isinstance(redemption, Redemption)
    assert redemption.stamps_spent == 3 and redemption.balance_after == 1 and redemption.entry.amount == -3

    with pytest.raises(ConflictError) as caught:
        client.stamps.redeem(member.id, card_id=card_id, reward_id=program["big_reward"])
    assert caught.value.status == 409 and caught.value.code == "insufficient_stamps"
    assert caught.value.request_id.startswith("req_")

    history = list(client.stamps.history(member.id))
    assert [e.amount for e in history] == [-3, 4]
    assert [e.amount for e in client.stamps.history(member.id, card_id=card_id, page_size=1)] == [-3, 4]


def test_cashback_credit_balance_history_and_redeem(client):
    member = client.members.create(email=_email("cash"))
    credit = client.cashback.credit(member.id, amount=500, reference="order-9", description="Order 9")
    assert credit.amount == 500 and credit.balance_after == 500
    balance = client.cashback.balance(member.id)
    assert isinstance(balance, CashbackBalance) and balance.balance == 500 and len(balance.currency) == 3
    debit = client.cashback.redeem(member.id, amount=200)
    assert debit.amount == -200 and debit.balance_after == 300
    with pytest.raises(ConflictError) as caught:
        client.cashback.redeem(member.id, amount=301)
    assert caught.value.code == "insufficient_balance"
    assert [e.amount for e in client.cashback.history(member.id)] == [-200, 500]
    assert client.cashback.balance(member.id).balance == 300


def test_claims_create_get_list_approve_and_reject(client, program):
    member = client.members.create(email=_email("claims"))
    stamps_claim = client.claims.create(member.id, card_id=program["card_id"], count=2, reference="receipt-1",
                                        note="forgot my card")
    cash_claim = client.claims.create(member.id, amount=120, reference="receipt-2")
    assert isinstance(stamps_claim, Claim) and stamps_claim.status == "pending" and stamps_claim.kind == "stamps"
    assert cash_claim.kind == "cashback"
    assert client.claims.get(stamps_claim.id) == stamps_claim

    pending = [c.id for c in client.claims.list(status="pending", member_id=member.id)]
    assert pending == [cash_claim.id, stamps_claim.id]

    approved = client.claims.approve(stamps_claim.id)
    assert approved.status == "approved" and approved.entry_id
    assert client.stamps.balance(member.id).for_card(program["card_id"]) == 2
    with pytest.raises(ConflictError) as caught:
        client.claims.approve(stamps_claim.id)
    assert caught.value.code == "claim_not_pending"

    rejected = client.claims.reject(cash_claim.id, reason="no receipt")
    assert rejected.status == "rejected" and rejected.reason == "no receipt"
    assert client.cashback.balance(member.id).balance == 0
    assert [c.id for c in client.claims.list(member_id=member.id, status="rejected")] == [cash_claim.id]


def test_iterating_pending_claims_while_approving_each(client):
    """The iterator's next page continues after a claim that has just left the filter."""
    member = client.members.create(email=_email("paging"))
    filed = [client.claims.create(member.id, amount=10 + n).id for n in range(3)]
    approved = []
    for claim in client.claims.list(status="pending", member_id=member.id, page_size=1):
        approved.append(client.claims.approve(claim.id).id)
    assert approved == filed[::-1]
    assert list(client.claims.list(status="pending", member_id=member.id)) == []


def test_referrals_validate_apply_and_stats(client, program):
    referrer = client.members.create(email=_email("referrer"))
    newcomer = client.members.create(email=_email("newcomer"))
    check = client.referrals.validate(referrer.referral_code, member_id=newcomer.id)
    assert check.valid is True and check.referrer_id == referrer.id
    own = client.referrals.validate(referrer.referral_code, member_id=referrer.id)
    assert own.valid is False and own.reason == "self_referral"

    referral = client.referrals.apply(code=referrer.referral_code, member_id=newcomer.id)
    assert referral.referrer_id == referrer.id and referral.referee_id == newcomer.id
    assert [e.amount for e in referral.entries] == [150]
    assert client.cashback.balance(referrer.id).balance == 150

    with pytest.raises(ConflictError) as caught:
        client.referrals.apply(code=referrer.referral_code, member_id=newcomer.id)
    assert caught.value.code == "already_referred"

    stats = client.referrals.stats(referrer.id)
    assert stats.referral_code == referrer.referral_code and stats.referred_count == 1
    assert [r.referee_id for r in stats.referrals] == [newcomer.id]


def test_an_unknown_member_is_not_found_and_bad_input_names_the_param(client):
    with pytest.raises(NotFoundError) as caught:
        client.members.get("mem_doesnotexist")
    assert caught.value.status == 404 and caught.value.request_id.startswith("req_")
    member = client.members.create(email=_email("bad"))
    with pytest.raises(InvalidRequestError) as bad:
        client.stamps.add(member.id, card_id="card_x", count=0)
    assert bad.value.status == 400 and bad.value.param == "count"


def test_a_test_mode_member_does_not_exist_for_the_prod_key(make_client, demo):
    test_client = make_client()
    prod_client = make_client(api_key=demo["prod_key"])
    member = test_client.members.create(email=_email("mode"))
    with pytest.raises(NotFoundError):
        prod_client.members.get(member.id)


def test_the_callers_idempotency_key_replays_the_first_answer(client):
    member = client.members.create(email=_email("idem"))
    key = "order-" + secrets.token_hex(6)
    first = client.cashback.credit(member.id, amount=75, idempotency_key=key)
    again = client.cashback.credit(member.id, amount=75, idempotency_key=key)
    assert again == first
    assert client.cashback.balance(member.id).balance == 75
    with pytest.raises(ConflictError) as caught:
        client.cashback.credit(member.id, amount=76, idempotency_key=key)
    assert caught.value.code == "idempotency_key_reused"
