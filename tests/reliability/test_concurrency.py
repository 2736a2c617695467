"""Races against the real server in two worker processes, on SQLite and on PostgreSQL:
no double spend, no replayed nonce, no claim applied twice, no revoked key accepted."""

from __future__ import annotations

import json
import os
import sqlite3

import psycopg2

from tests.reliability.conftest import WORKERS, PartnerClient, run_together


def _statuses(results) -> list:
    return [r.status_code if hasattr(r, "status_code") else repr(r) for r in results]


def test_40_concurrent_redeems_against_a_balance_for_20_let_exactly_20_through(server, partner):
    member = partner.create_member()
    assert partner.post(f"/v1/members/{member}/cashback/credit", {"amount": 2000}).status_code == 201

    results = run_together(40, lambda i: partner.post(
        f"/v1/members/{member}/cashback/redeem", {"amount": 100, "reference": f"race-{i}"}))

    statuses = _statuses(results)
    assert statuses.count(201) == 20, statuses
    assert statuses.count(409) == 20, statuses
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {"insufficient_balance"}
    assert partner.cashback_balance(member) == 0
    entries = partner.cashback_history(member)
    assert len(entries) == 21  # the credit and exactly 20 debits
    assert sum(e["amount"] for e in entries) == 0
    # Every debit saw a different balance: no two redeems read the same "before".
    assert sorted(e["balance_after"] for e in entries if e["amount"] < 0) == list(range(0, 2000, 100))
    assert server.proc.poll() is None and len(_worker_pids(server)) == WORKERS


def test_one_signed_request_sent_to_several_processes_at_once_is_accepted_once(server, partner):
    member = partner.create_member()
    path = f"/v1/members/{member}/cashback/credit"
    body = json.dumps({"amount": 100}, separators=(",", ":")).encode()
    headers = partner.signed_headers("POST", path, body)  # one nonce, sent 12 times

    results = run_together(12, lambda i: partner.session.post(partner.base_url + path, data=body,
                                                               headers=headers, timeout=30))

    statuses = _statuses(results)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(401) == 11, statuses
    assert {r.json()["error"]["code"] for r in results if r.status_code == 401} == {"replayed_request"}
    assert partner.cashback_balance(member) == 100


def test_a_claim_approved_by_several_clients_at_once_is_applied_once(server, partner):
    member = partner.create_member()
    res = partner.post("/v1/claims", {"member_id": member, "amount": 750, "reference": "receipt-1"})
    assert res.status_code == 201, res.text
    claim = res.json()["id"]

    results = run_together(10, lambda i: partner.post(f"/v1/claims/{claim}/approve"))

    statuses = _statuses(results)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 9, statuses
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {"claim_not_pending"}
    assert partner.cashback_balance(member) == 750
    entries = partner.cashback_history(member)
    assert [(e["amount"], e["source"]) for e in entries] == [(750, "claim")]
    assert partner.get(f"/v1/claims/{claim}").json()["status"] == "approved"


def test_one_idempotency_key_raced_from_several_clients_writes_once(server, partner):
    member = partner.create_member()

    results = run_together(10, lambda i: partner.post(
        f"/v1/members/{member}/cashback/credit", {"amount": 300}, **{"Idempotency-Key": "race-key-1"}))

    statuses = _statuses(results)
    assert 201 in statuses and set(statuses) <= {201, 409}, statuses
    ids = {r.json()["id"] for r in results if r.status_code == 201}
    assert len(ids) == 1  # a replay returns the first response, never a second entry
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} <= {"idempotency_request_in_progress"}
    assert partner.cashback_balance(member) == 300


def _worker_pids(server) -> list[int]:
    """The gunicorn workers: children of the master process."""
    pid = server.proc.pid
    children = []
    for task in (f"/proc/{pid}/task/{t}/children" for t in os.listdir(f"/proc/{pid}/task")):
        try:
            children += [int(c) for c in open(task).read().split()]
        except OSError:
            pass
    return children


def test_a_key_revoked_by_another_process_fails_on_its_next_request_in_every_server_thread(server):
    """The server's threads keep their database connections between requests; none of them
    may go on accepting a key that another process has revoked."""
    creds = server.demo()  # a partner of its own: the module's partner keeps its key
    caller = PartnerClient(server.url, creds)
    # Enough at once that every thread of both workers has served a request (and holds a connection).
    assert _statuses(run_together(16, lambda i: caller.get("/v1/key"))) == [200] * 16

    _revoke_every_key_of(server.env["LOYALTY_DATABASE_URL"], creds["app_id"])

    results = run_together(16, lambda i: caller.get("/v1/key"))
    assert _statuses(results) == [401] * 16
    assert {r.json()["error"]["code"] for r in results} == {"revoked_api_key"}


def _revoke_every_key_of(database_url: str, app_id: str) -> None:
    """What the portal's Revoke button writes, from a process other than the server."""
    sql = ("UPDATE api_key SET revoked_at = CURRENT_TIMESTAMP "
           "WHERE application_id = (SELECT id FROM application WHERE app_id = {0})")
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url[len("sqlite:///"):], timeout=10)
        with conn:
            conn.execute(sql.format("?"), (app_id,))
        conn.close()
    else:
        conn = psycopg2.connect(database_url)
        with conn, conn.cursor() as cursor:
            cursor.execute(sql.format("%s"), (app_id,))
        conn.close()
