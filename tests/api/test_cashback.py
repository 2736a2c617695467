"""Cashback through the signed API: balance and currency, credit, redeem, history,
idempotent credits, and nothing left behind when a write fails half-way."""

from __future__ import annotations

import threading

import pytest
import requests

from portal import db
from tests.api.helpers import SignedAuth, SignedClient, add_key, error_of
from tests.conftest import LiveServer
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


@pytest.mark.sqlite_only  # input validation
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


def race(count: int, send) -> list[int]:
    """Send `count` requests at once from as many threads; their statuses, sorted."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def worker():
        barrier.wait()
        statuses.append(send().status_code)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def assert_exact_under_concurrent_redemptions(server) -> None:
    """30 clients each redeem 10 cashback from 100, and 30 each redeem a 10-stamp reward
    from 100 stamps: exactly 10 of each succeed, the rest get 409, balances end at 0 and
    the history adds up."""
    demo = server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    url = server.url
    member = requests.post(f"{url}/v1/members", json={"email": "race@example.com"}, auth=auth).json()["id"]
    card = requests.get(f"{url}/v1/cards", auth=auth).json()["data"][-1]  # the demo's Coffee card
    reward = next(r for r in card["rewards"] if r["stamps_cost"] == 10)
    assert requests.post(f"{url}/v1/members/{member}/cashback/credit", json={"amount": 100},
                         auth=auth).status_code == 201
    assert requests.post(f"{url}/v1/members/{member}/stamps", json={"card_id": card["id"], "count": 100},
                         auth=auth).status_code == 201

    cashback = race(30, lambda: requests.post(f"{url}/v1/members/{member}/cashback/redeem", json={"amount": 10},
                                              auth=auth, timeout=60))
    stamps = race(30, lambda: requests.post(f"{url}/v1/members/{member}/stamps/redeem", auth=auth, timeout=60,
                                            json={"card_id": card["id"], "reward_id": reward["id"]}))

    assert cashback == [201] * 10 + [409] * 20
    assert stamps == [201] * 10 + [409] * 20
    assert requests.get(f"{url}/v1/members/{member}/cashback", auth=auth).json()["balance"] == 0
    balances = requests.get(f"{url}/v1/members/{member}/stamps", auth=auth).json()["data"]
    assert [b["balance"] for b in balances if b["card_id"] == card["id"]] == [0]
    for kind in ("cashback", "stamps"):
        history = requests.get(f"{url}/v1/members/{member}/{kind}/history?limit=100", auth=auth).json()["data"]
        assert len(history) == 11 and sum(e["amount"] for e in history) == 0
        assert history[0]["balance_after"] == 0


def test_concurrent_redemptions_on_the_live_server_spend_exactly_the_balance(live_server):
    assert_exact_under_concurrent_redemptions(live_server)


@pytest.mark.postgres
def test_concurrent_redemptions_on_postgresql_with_two_server_processes(postgres_databases, tmp_path):
    url = postgres_databases.create()
    server = LiveServer(tmp_path, workers=2, env={"LOYALTY_DATABASE_URL": url}).start()
    try:
        assert_exact_under_concurrent_redemptions(server)
    finally:
        server.stop()
        postgres_databases.release(url)
