"""Stamps through the signed API: balances per card, history, adding and redeeming."""

from __future__ import annotations

import pytest

from tests.api.conftest import create_member
from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def add(api, member, card, count, **extra):
    return api.post(f"/v1/members/{member}/stamps", json={"card_id": card, "count": count, **extra})


def test_a_new_member_has_zero_stamps_on_every_card(api, program, member):
    res = api.get(f"/v1/members/{member}/stamps")
    assert res.status_code == 200
    body = res.get_json()
    assert body["member_id"] == member
    assert [(row["card_id"], row["card_name"], row["balance"]) for row in body["data"]] == [
        (program["card"], "Coffee card", 0), (program["lunch"], "Lunch card", 0)]


def test_adding_stamps_returns_the_ledger_entry_with_the_balance_after(api, program, member):
    first = add(api, member, program["card"], 3, reference="order-1")
    second = add(api, member, program["card"], 4)
    assert first.status_code == 201
    entry = first.get_json()
    assert entry["id"].startswith("txn_") and entry["object"] == "ledger_entry"
    assert (entry["amount"], entry["balance_after"], entry["reference"], entry["card_id"]) == (
        3, 3, "order-1", program["card"])
    assert entry["created_at"].endswith("Z")
    assert second.get_json()["balance_after"] == 7
    balances = api.get(f"/v1/members/{member}/stamps").get_json()["data"]
    assert balances[0]["balance"] == 7


def test_history_lists_entries_newest_first_and_by_card(api, program, member):
    add(api, member, program["card"], 1)
    add(api, member, program["lunch"], 2)
    add(api, member, program["card"], 3)
    everything = api.get(f"/v1/members/{member}/stamps/history").get_json()
    assert everything["object"] == "list" and not everything["has_more"]
    assert [e["amount"] for e in everything["data"]] == [3, 2, 1]
    coffee = api.get(f"/v1/members/{member}/stamps/history?card_id={program['card']}").get_json()
    assert [e["amount"] for e in coffee["data"]] == [3, 1]
    first_page = api.get(f"/v1/members/{member}/stamps/history?limit=2").get_json()
    assert first_page["has_more"] and len(first_page["data"]) == 2
    rest = api.get(f"/v1/members/{member}/stamps/history?limit=2&starting_after={first_page['data'][1]['id']}")
    assert [e["amount"] for e in rest.get_json()["data"]] == [1]


def test_redeeming_a_reward_spends_its_cost(api, program, member):
    add(api, member, program["card"], 12)
    res = api.post(f"/v1/members/{member}/stamps/redeem",
                   json={"card_id": program["card"], "reward_id": program["free_coffee"]})
    assert res.status_code == 201
    redemption = res.get_json()
    assert redemption["id"].startswith("red_")
    assert (redemption["stamps_spent"], redemption["balance_after"], redemption["reward_id"]) == (
        10, 2, program["free_coffee"])
    assert redemption["entry"]["amount"] == -10 and redemption["entry"]["source"] == "redeem"


def test_redeeming_without_enough_stamps_is_409_insufficient_stamps(api, program, member):
    add(api, member, program["card"], 9)
    res = api.post(f"/v1/members/{member}/stamps/redeem",
                   json={"card_id": program["card"], "reward_id": program["free_coffee"]})
    assert res.status_code == 409
    error = error_of(res)
    assert (error["type"], error["code"]) == ("conflict", "insufficient_stamps")
    assert api.get(f"/v1/members/{member}/stamps").get_json()["data"][0]["balance"] == 9
    assert len(api.get(f"/v1/members/{member}/stamps/history").get_json()["data"]) == 1


def test_a_reward_of_another_card_is_404(api, program, member):
    add(api, member, program["lunch"], 20)
    res = api.post(f"/v1/members/{member}/stamps/redeem",
                   json={"card_id": program["lunch"], "reward_id": program["free_coffee"]})
    assert res.status_code == 404 and error_of(res)["param"] == "reward_id"


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("count", [0, 1001, -1, "3", 2.5, None, True])
def test_count_must_be_a_whole_number_from_1_to_1000(api, program, member, count):
    res = add(api, member, program["card"], count)
    assert res.status_code == 400
    assert error_of(res)["param"] == "count"


@pytest.mark.sqlite_only  # input validation
def test_unknown_fields_and_missing_card_are_refused(api, program, member):
    res = add(api, member, program["card"], 1, points=5)
    assert res.status_code == 400 and error_of(res)["param"] == "points"
    res = api.post(f"/v1/members/{member}/stamps", json={"count": 1})
    assert res.status_code == 400 and error_of(res)["param"] == "card_id"
    res = add(api, member, "card_doesnotexist", 1)
    assert res.status_code == 404 and error_of(res)["param"] == "card_id"


def test_another_partners_member_and_card_are_404(app, client, api, program, member):
    other = SignedClient(client, create_credentials(app, business="Other Shop"))
    other_member = create_member(other, "bob@example.com")["id"]
    assert other.get(f"/v1/members/{member}/stamps").status_code == 404
    assert add(other, member, program["card"], 1).status_code == 404
    res = add(other, other_member, program["card"], 1)  # their member, our card
    assert res.status_code == 404 and error_of(res)["param"] == "card_id"
    assert api.get(f"/v1/members/{member}/stamps").get_json()["data"][0]["balance"] == 0


def test_the_prod_key_does_not_see_test_members(app, client, api, creds, program, member):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    res = prod.get(f"/v1/members/{member}/stamps")
    assert res.status_code == 404 and error_of(res)["code"] == "resource_missing"
    assert add(prod, member, program["card"], 1).status_code == 404
    assert prod.get(f"/v1/members/{member}/stamps/history").status_code == 404
