"""Referrals through the signed API: stats, validating codes, applying them once, never to
oneself, with the program's reward credited in the same transaction."""

from __future__ import annotations

import pytest

from portal.domain import catalog
from portal.domain.catalog import ProgramSettings
from portal.models import Partner
from tests.api.conftest import create_member
from tests.api.helpers import SignedClient, add_key, error_of


@pytest.fixture
def members(api) -> dict:
    """ann (the referrer), bob (a new member) and ann's second address."""
    return {
        "ann": create_member(api, "ann@example.com"),
        "bob": create_member(api, "bob@example.com"),
        "ann_again": create_member(api, "ann+shop@example.com"),
    }


@pytest.fixture
def stamps_rule(app, creds, program):
    """A referral puts 2 stamps on the coffee card of both members."""
    with app.app_context():
        catalog.update_program(Partner.get_by_id(creds.partner_id), ProgramSettings(
            currency="EUR", referral_reward_kind="stamps", referral_card_id=program["card"], referral_amount=2,
            reward_referrer=True, reward_referee=True))


def apply(api, code, member_id):
    return api.post("/v1/referrals/apply", json={"code": code, "member_id": member_id})


def test_applying_a_code_credits_the_reward_to_both(api, members, program, stamps_rule):
    ann, bob = members["ann"], members["bob"]
    res = apply(api, ann["referral_code"], bob["id"])
    assert res.status_code == 201
    referral = res.get_json()
    assert referral["id"].startswith("ref_")
    assert (referral["referrer_id"], referral["referee_id"], referral["rewarded"]) == (ann["id"], bob["id"], True)
    assert sorted((e["member_id"], e["amount"], e["source"]) for e in referral["entries"]) == sorted(
        [(ann["id"], 2, "referral"), (bob["id"], 2, "referral")])
    for who in (ann, bob):
        assert api.get(f"/v1/members/{who['id']}/stamps").get_json()["data"][0]["balance"] == 2


def test_stats_count_referrals_and_rewards(api, members, stamps_rule):
    ann, bob = members["ann"], members["bob"]
    apply(api, ann["referral_code"], bob["id"])
    stats = api.get(f"/v1/members/{ann['id']}/referrals").get_json()
    assert stats["referral_code"] == ann["referral_code"]
    assert (stats["referred_count"], stats["rewarded_count"], stats["referred_by"]) == (1, 1, None)
    assert [r["referee_id"] for r in stats["referrals"]] == [bob["id"]]
    assert api.get(f"/v1/members/{bob['id']}/referrals").get_json()["referred_by"] == ann["id"]


def test_without_a_referral_rule_nothing_is_credited(api, members):
    res = apply(api, members["ann"]["referral_code"], members["bob"]["id"])
    assert res.status_code == 201
    assert res.get_json()["rewarded"] is False and res.get_json()["entries"] == []


def test_validate_answers_valid_with_the_referrer(api, members):
    res = api.get(f"/v1/referrals/validate?code={members['ann']['referral_code']}&member_id={members['bob']['id']}")
    assert res.status_code == 200
    assert res.get_json() == {"valid": True, "referrer_id": members["ann"]["id"]}
    res = api.get(f"/v1/referrals/validate?code={members['ann']['referral_code'].lower()}")
    assert res.get_json()["valid"] is True


def test_validate_names_the_reason_a_code_cannot_be_used(api, members):
    ann = members["ann"]
    assert api.get("/v1/referrals/validate?code=NOSUCHCODE").get_json() == {"valid": False, "reason": "unknown_code"}
    own = api.get(f"/v1/referrals/validate?code={ann['referral_code']}&member_id={ann['id']}").get_json()
    assert own == {"valid": False, "reason": "self_referral", "referrer_id": ann["id"]}
    same_mailbox = api.get(
        f"/v1/referrals/validate?code={ann['referral_code']}&member_id={members['ann_again']['id']}").get_json()
    assert same_mailbox["reason"] == "self_referral"
    apply(api, ann["referral_code"], members["bob"]["id"])
    again = api.get(f"/v1/referrals/validate?code={ann['referral_code']}&member_id={members['bob']['id']}")
    assert again.get_json()["reason"] == "already_referred"


def test_validate_requires_a_code_and_a_known_member(api, members):
    res = api.get("/v1/referrals/validate")
    assert res.status_code == 400 and error_of(res)["param"] == "code"
    res = api.get(f"/v1/referrals/validate?code={members['ann']['referral_code']}&member_id=mem_nobody")
    assert res.status_code == 404 and error_of(res)["param"] == "member_id"


def test_self_referral_by_id_is_409_and_credits_nothing(api, members, stamps_rule):
    ann = members["ann"]
    res = apply(api, ann["referral_code"], ann["id"])
    assert res.status_code == 409 and error_of(res)["code"] == "self_referral"
    assert api.get(f"/v1/members/{ann['id']}/stamps").get_json()["data"][0]["balance"] == 0


def test_self_referral_by_email_is_409(api, members, stamps_rule):
    res = apply(api, members["ann"]["referral_code"], members["ann_again"]["id"])
    assert res.status_code == 409 and error_of(res)["code"] == "self_referral"
    assert api.get(f"/v1/members/{members['ann']['id']}/referrals").get_json()["referred_count"] == 0


def test_self_referral_by_phone_is_409(api):
    ann = create_member(api, "ann@example.com", phone="+31 6 1234 5678")
    # The same phone cannot be on two members, so this is ann's own code under another email.
    res = apply(api, ann["referral_code"], ann["id"])
    assert res.status_code == 409 and error_of(res)["code"] == "self_referral"


def test_a_referral_applied_twice_is_409_and_rewarded_once(api, members, stamps_rule):
    ann, bob = members["ann"], members["bob"]
    assert apply(api, ann["referral_code"], bob["id"]).status_code == 201
    res = apply(api, ann["referral_code"], bob["id"])
    assert res.status_code == 409 and error_of(res)["code"] == "already_referred"
    res = apply(api, members["ann_again"]["referral_code"], bob["id"])
    assert res.status_code == 409 and error_of(res)["code"] == "already_referred"
    assert api.get(f"/v1/members/{bob['id']}/stamps").get_json()["data"][0]["balance"] == 2
    assert api.get(f"/v1/members/{ann['id']}/referrals").get_json()["referred_count"] == 1


def test_an_unknown_code_is_400_naming_code(api, members):
    res = apply(api, "NOSUCHCODE", members["bob"]["id"])
    assert res.status_code == 400
    assert (error_of(res)["code"], error_of(res)["param"]) == ("unknown_code", "code")


def test_codes_of_the_other_mode_do_not_exist(app, client, api, creds, members):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    prod_member = create_member(prod, "cat@example.com")
    res = apply(prod, members["ann"]["referral_code"], prod_member["id"])
    assert res.status_code == 400 and error_of(res)["code"] == "unknown_code"
    assert prod.get(f"/v1/members/{members['ann']['id']}/referrals").status_code == 404
    res = apply(prod, members["ann"]["referral_code"], members["bob"]["id"])
    assert res.status_code == 404 and error_of(res)["param"] == "member_id"
