"""Referrals: once per member, never by oneself, the program's reward in the same transaction."""

from __future__ import annotations

import pytest

from portal.domain import DomainError, catalog, ledger, referrals
from portal.domain.catalog import ProgramSettings
from portal.models import LedgerEntry, Referral, StampBalance
from tests.domain.test_ledger import refuse_inserts, run_concurrently

pytestmark = pytest.mark.both_engines


@pytest.fixture
def cashback_rule(partner):
    """Referrals pay 500 minor units to the referrer and to the new member."""
    return catalog.update_program(partner, ProgramSettings(
        currency="EUR", referral_reward_kind="cashback", referral_amount=500,
        reward_referrer=True, reward_referee=True))


def test_applying_a_code_records_the_referral_and_pays_both(cashback_rule, make_member):
    ann, bob = make_member(email="ann@example.com"), make_member(email="bob@example.com")

    referral = referrals.apply_referral(bob, ann.referral_code.lower())

    assert referral.public_id.startswith("ref_") and referral.rewarded
    assert ledger.cashback_balance(ann) == 500 and ledger.cashback_balance(bob) == 500
    assert {e.source for e in LedgerEntry.select()} == {"referral"}
    stats = referrals.referral_stats(ann)
    assert (stats.referred_count, stats.rewarded_count) == (1, 1)
    assert stats.latest[0].referee.public_id == bob.public_id
    assert referrals.referral_stats(bob).referred_by == ann.public_id


def test_stamp_rewards_go_on_the_programs_card_to_the_referrer_only(partner, card, make_member):
    catalog.update_program(partner, ProgramSettings(
        currency="EUR", referral_reward_kind="stamps", referral_card_id=card.public_id, referral_amount=3,
        reward_referrer=True, reward_referee=False))
    ann, bob = make_member(email="ann@example.com"), make_member(email="bob@example.com")
    referrals.apply_referral(bob, ann.referral_code)
    assert StampBalance.get(member=ann, card=card).balance == 3
    assert StampBalance.get_or_none(member=bob, card=card) is None


def test_without_a_reward_rule_the_referral_is_recorded_unrewarded(make_member):
    ann, bob = make_member(email="ann@example.com"), make_member(email="bob@example.com")
    referral = referrals.apply_referral(bob, ann.referral_code)
    assert not referral.rewarded and LedgerEntry.select().count() == 0


def test_a_member_cannot_use_their_own_code(cashback_rule, make_member):
    ann = make_member(email="ann@example.com")
    with pytest.raises(DomainError) as refused:
        referrals.apply_referral(ann, ann.referral_code)
    assert refused.value.code == "self_referral"
    assert Referral.select().count() == 0 and ledger.cashback_balance(ann) == 0


@pytest.mark.parametrize("referrer_email, referee_email", [
    ("ann@example.com", "ann+again@example.com"),
    ("ann.lee@gmail.com", "annlee@googlemail.com"),
    ("ANN@example.com", "ann+2@EXAMPLE.com"),
])
def test_a_second_record_with_the_same_mailbox_is_a_self_referral(cashback_rule, make_member,
                                                                   referrer_email, referee_email):
    ann = make_member(email=referrer_email.lower())
    again = make_member(email=referee_email.lower())
    check = referrals.validate_code(ann.partner, "test", ann.referral_code, again)
    assert (check.valid, check.reason, check.referrer.public_id) == (False, "self_referral", ann.public_id)
    with pytest.raises(DomainError) as refused:
        referrals.apply_referral(again, ann.referral_code)
    assert refused.value.code == "self_referral"
    assert ledger.cashback_balance(ann) == 0


def test_the_same_phone_is_a_self_referral(make_member):
    ann = make_member(phone="+31612345678", email="ann@example.com")
    other = make_member(phone="+31612345679", email="x@example.com")
    assert referrals.is_same_person(ann, ann)
    assert not referrals.is_same_person(ann, other)
    other.phone = ann.phone  # as if the unique index allowed it: the rule still catches it
    assert referrals.is_same_person(ann, other)


def test_a_member_is_referred_only_once(cashback_rule, make_member):
    ann, cat, bob = (make_member(email=f"{n}@example.com") for n in ("ann", "cat", "bob"))
    referrals.apply_referral(bob, ann.referral_code)
    for code in (ann.referral_code, cat.referral_code):
        with pytest.raises(DomainError) as refused:
            referrals.apply_referral(bob, code)
        assert refused.value.code == "already_referred"
    assert ledger.cashback_balance(bob) == 500 and ledger.cashback_balance(cat) == 0
    assert Referral.select().count() == 1


def test_concurrent_applications_refer_once_and_pay_once(cashback_rule, make_member):
    ann, bob = make_member(email="ann@example.com"), make_member(email="bob@example.com")
    results = run_concurrently(10, lambda: referrals.apply_referral(bob, ann.referral_code))
    assert sum(isinstance(r, Referral) for r in results) == 1, results
    assert all(r.code == "already_referred" for r in results if not isinstance(r, Referral))
    assert ledger.cashback_balance(ann) == 500 and ledger.cashback_balance(bob) == 500


def test_a_reward_that_cannot_be_written_undoes_the_referral(cashback_rule, make_member):
    ann, bob = make_member(email="ann@example.com"), make_member(email="bob@example.com")
    refuse_inserts("ledger_entry")
    with pytest.raises(Exception):
        referrals.apply_referral(bob, ann.referral_code)
    assert Referral.select().count() == 0
    assert ledger.cashback_balance(ann) == 0


def test_codes_are_looked_up_within_the_partner_and_mode(make_member, partner):
    from portal.models import Partner

    ann = make_member(email="ann@example.com")
    other_partner_member = make_member(email="bob@example.com", owner=Partner.create(name="Other"))
    prod_member = make_member(email="cat@example.com", mode="prod")
    check = referrals.validate_code(partner, "test", ann.referral_code)
    assert (check.valid, check.reason, check.referrer.public_id) == (True, None, ann.public_id)
    unknown = referrals.validate_code(partner, "test", "NOPE")
    assert (unknown.valid, unknown.reason, unknown.referrer) == (False, "unknown_code", None)
    assert referrals.validate_code(partner, "test", other_partner_member.referral_code).reason == "unknown_code"
    with pytest.raises(DomainError) as refused:
        referrals.apply_referral(prod_member, ann.referral_code)
    assert refused.value.code == "unknown_code"
