"""Cashback through the signed API: balance and currency, credit, redeem, history,
idempotent credits, and nothing left behind when a write fails half-way."""

from __future__ import annotations

import threading

import pytest
import requests

from portal import db
from tests.api.helpers import SignedAuth, SignedClient, add_key, error_of
from tests.api.test_stamps import create_member, member  # noqa: F401  (fixture)
from tests.domain.test_ledger import refuse_inserts



def balance(api, member) -> int:
    return api.get(f"/v1/members/{member}/cashback").get_json()["balance"]


def test_a_new_member_has_zero_in_the_programs_currency(api, member):
    res = api.get(f"/v1/members/{member}/cashback")
    assert res.status_code == 200
    assert res.get_json() == {"object": "cashback_balance", "member_id": member, "balance": 0, "currency": "EUR"}


def test_credit_and_redeem_move_the_balance_in_minor_units(api, member):
    res = api.post(f"/v1/members/{member}/cashback/credit",
                   json={"amount": 1250, "reference": "order-7", "description": "5% back"})
    assert res.status_code == 201
    entry = res.get_json()
    assert entry["id"].startswith("txn_")
    assert (entry["kind"], entry["amount"], entry["balance_after"], entry["currency"]) == ("cashback", 1250, 1250, "EUR")
    assert (entry["reference"], entry["description"], entry["source"]) == ("order-7", "5% back", "earn")

    res = api.post(f"/v1/members/{member}/cashback/redeem", json={"amount": 250})
    assert res.status_code == 201
    assert (res.get_json()["amount"], res.get_json()["balance_after"]) == (-250, 1000)
    assert balance(api, member) == 1000
    history = api.get(f"/v1/members/{member}/cashback/history").get_json()["data"]
    assert [e["amount"] for e in history] == [-250, 1250]


def test_redeeming_more_than_the_balance_is_409_insufficient_balance(api, member):
    api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 100})
    res = api.post(f"/v1/members/{member}/cashback/redeem", json={"amount": 101})
    assert res.status_code == 409
    assert (error_of(res)["type"], error_of(res)["code"]) == ("conflict", "insufficient_balance")
    assert balance(api, member) == 100


@pytest.mark.parametrize("amount", [0, -5, 1.5, "100", None, True, 10**13])
def test_amount_must_be_positive_whole_minor_units(api, member, amount):
    res = api.post(f"/v1/members/{member}/cashback/credit", json={"amount": amount})
    assert res.status_code == 400 and error_of(res)["param"] == "amount"
    assert balance(api, member) == 0


def test_a_replayed_credit_returns_the_first_response_and_credits_once(api, member):
    headers = {"Idempotency-Key": "credit-order-7"}
    first = api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 500}, headers=headers)
    again = api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 500}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert balance(api, member) == 500
    assert len(api.get(f"/v1/members/{member}/cashback/history").get_json()["data"]) == 1


def test_the_same_idempotency_key_for_a_different_credit_is_refused(api, member):
    headers = {"Idempotency-Key": "credit-order-8"}
    api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 500}, headers=headers)
    res = api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 600}, headers=headers)
    assert res.status_code == 409 and error_of(res)["code"] == "idempotency_key_reused"
    assert balance(api, member) == 500


def test_a_credit_that_fails_after_the_balance_update_leaves_nothing(app, api, member):
    api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 300})
    with app.app_context():
        db.database.connect(reuse_if_open=True)
        refuse_inserts("ledger_entry")
        db.database.close()
    res = api.post(f"/v1/members/{member}/cashback/credit", json={"amount": 200})
    assert res.status_code == 500
    error = error_of(res)
    assert error["type"] == "api_error" and "disk on fire" not in res.get_data(as_text=True)
    res = api.post(f"/v1/members/{member}/cashback/redeem", json={"amount": 100})
    assert res.status_code == 500
    assert balance(api, member) == 300
    assert len(api.get(f"/v1/members/{member}/cashback/history").get_json()["data"]) == 1


def test_another_partner_or_mode_gets_404(app, client, api, creds, member):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    for path in ("", "/history"):
        assert prod.get(f"/v1/members/{member}/cashback{path}").status_code == 404
    res = prod.post(f"/v1/members/{member}/cashback/credit", json={"amount": 5})
    assert res.status_code == 404 and error_of(res)["param"] == "member_id"
    assert balance(api, member) == 0


@pytest.mark.sqlite_only
def test_thirty_concurrent_redemptions_on_the_live_server_spend_exactly_the_balance(live_server):
    """30 clients each redeem 10 from 100 against the real server: 10 succeed, 20 get 409."""
    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    url = live_server.url
    member_id = requests.post(f"{url}/v1/members", json={"email": "race@example.com"}, auth=auth).json()["id"]
    assert requests.post(f"{url}/v1/members/{member_id}/cashback/credit", json={"amount": 100},
                         auth=auth).status_code == 201
    barrier = threading.Barrier(30)
    statuses: list[int] = []

    def redeem():
        barrier.wait()
        res = requests.post(f"{url}/v1/members/{member_id}/cashback/redeem", json={"amount": 10}, auth=auth,
                            timeout=60)
        statuses.append(res.status_code)

    threads = [threading.Thread(target=redeem) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [201] * 10 + [409] * 20
    assert requests.get(f"{url}/v1/members/{member_id}/cashback", auth=auth).json()["balance"] == 0
    history = requests.get(f"{url}/v1/members/{member_id}/cashback/history?limit=100", auth=auth).json()["data"]
    assert sum(e["amount"] for e in history) == 0 and len(history) == 11
