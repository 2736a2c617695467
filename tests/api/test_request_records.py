"""The request log records every /v1 request (DESIGN.md §11): accepted and refused, with the
route pattern and the path, the server's canonical string for invalid_signature, and never
a body, key, secret, signature or OTP code. Recording is buffered; `request_log.flush()`
writes the buffer at once (the live-server test shows the flusher does it within a second)."""

from __future__ import annotations

import time

import requests

from portal.domain import request_log
from portal.models import Application, RequestDayCount, RequestRecord
from tests.api.helpers import SignedAuth, SignedClient, add_key, error_of


def records(app) -> list[RequestRecord]:
    with app.app_context():
        request_log.flush()
        return list(RequestRecord.select().order_by(RequestRecord.id))


def test_an_accepted_request_is_recorded_with_its_route_key_and_latency(app, api, creds):
    res = api.post("/v1/members", json={"email": "ana@example.com", "name": "Ana"},
                   headers={"Idempotency-Key": "order-17", "User-Agent": "loyalty-sdk/0.1.0 python/3.12.1"})
    assert res.status_code == 201
    member = res.get_json()["id"]
    assert api.get(f"/v1/members/{member}").status_code == 200
    replay = api.post("/v1/members", json={"email": "ana@example.com", "name": "Ana"},
                      headers={"Idempotency-Key": "order-17"})
    assert replay.headers["Idempotent-Replayed"] == "true"

    created, read, replayed = records(app)
    with app.app_context():
        application = Application.get(Application.app_id == creds.app_id)
    assert created.request_id == res.headers["X-Request-Id"]
    assert (created.method, created.route, created.path, created.status) == ("POST", "/v1/members", "/v1/members", 201)
    assert (created.application_id, created.partner_id, created.mode) == (application.id, creds.partner_id, "test")
    assert created.key_masked == f"{creds.api_key[:12]}…{creds.api_key[-4:]}"
    assert created.idempotency_key == "order-17" and not created.replayed
    assert created.user_agent == "loyalty-sdk/0.1.0 python/3.12.1"
    assert created.error_code is None and created.latency_ms > 0 and created.client_ip == "127.0.0.1"
    assert (read.route, read.path) == ("/v1/members/{member_id}", f"/v1/members/{member}")
    assert replayed.replayed and replayed.status == 201


def test_refusals_are_recorded_with_code_and_message(app, api, creds, client):
    assert api.get("/v1/members?limit=500").status_code == 400
    assert api.get("/v1/nothing-here").status_code == 404
    # refused before the key resolves: filed under the application the App ID names
    unknown = client.get("/v1/members", headers={"Authorization": "Bearer test_sk_" + "A" * 40,
                                                 "X-Loyalty-App-Id": creds.app_id})
    assert unknown.status_code == 401
    # neither key nor App ID: stored with no application, so no partner sees it
    assert client.get("/v1/members").status_code == 401

    limit, missing, invalid_key, anonymous = records(app)
    assert (limit.status, limit.error_code, limit.route) == (400, "invalid_request", "/v1/members")
    assert "limit" in limit.error_message
    assert (missing.status, missing.error_code, missing.route, missing.path) == (404, "not_found", None,
                                                                                 "/v1/nothing-here")
    assert missing.application_id is not None  # no route, so no gate: filed by its App ID
    assert invalid_key.error_code in ("malformed_api_key", "invalid_api_key")
    assert invalid_key.partner_id == creds.partner_id and invalid_key.api_key_id is None
    assert invalid_key.key_masked is None and invalid_key.mode == "test"
    assert anonymous.error_code == "missing_api_key" and anonymous.application_id is None


def test_invalid_signature_keeps_the_servers_canonical_string_and_no_secret(app, api, creds):
    res = api.post("/v1/members", json={"email": "otp@example.com"}, secret="secret_" + "x" * 40,
                   headers={"Idempotency-Key": "k-1"})
    error = error_of(res)
    assert error["code"] == "invalid_signature"
    assert f"See the request log for {res.headers['X-Request-Id']}" in error["message"]

    (rec,) = records(app)
    assert rec.error_code == "invalid_signature" and rec.canonical_string == error["canonical_string"]
    assert "See the request log" not in rec.error_message
    stored = " ".join(str(value) for value in rec.__data__.values())
    assert creds.api_key not in stored and creds.app_secret not in stored
    assert "otp@example.com" not in stored  # no body
    assert res.request.headers["X-Loyalty-Signature"] not in stored


def test_an_otp_code_is_never_recorded(app, api, member):
    sent = api.post(f"/v1/members/{member}/otp", json={"channel": "email"})
    assert sent.status_code in (200, 201), sent.get_json()
    wrong = api.post(f"/v1/members/{member}/otp/verify", json={"code": "123456"})
    assert wrong.status_code >= 400
    rec = records(app)[-1]
    assert rec.route == "/v1/members/{member_id}/otp/verify"
    assert "123456" not in " ".join(str(value) for value in rec.__data__.values())


def test_day_counts_follow_the_records_per_key(app, api, creds, client):
    other = SignedClient(client, add_key(app, creds))
    for _ in range(3):
        assert api.get("/v1/key").status_code == 200
    assert other.get("/v1/key").status_code == 200
    assert api.get("/v1/members?limit=0").status_code == 400
    records(app)
    with app.app_context():
        rows = {(r.api_key_id, r.succeeded, r.failed) for r in RequestDayCount.select()}
        application = Application.get(Application.app_id == creds.app_id)
        counts = request_log.key_counts(application)
    assert sorted(counts.values()) == [1, 4] and len(rows) == 2


def test_the_flusher_writes_within_a_second_on_a_live_server(live_server):
    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], "secret_" + "y" * 40, demo["test_key"])
    res = requests.get(live_server.url + "/v1/members", auth=auth, timeout=10)
    assert error_of(res)["code"] == "invalid_signature"
    sent = time.monotonic()
    import sqlite3

    found = None
    while time.monotonic() - sent < 1.5 and found is None:
        with sqlite3.connect(live_server.data_dir / "loyalty.db") as conn:
            found = conn.execute("SELECT status, error_code, canonical_string FROM request_record "
                                 "WHERE request_id = ?", (res.headers["X-Request-Id"],)).fetchone()
        time.sleep(0.05)
    assert found is not None, "not written within 1.5 s"
    assert time.monotonic() - sent < 1.2
    assert found[:2] == (401, "invalid_signature") and found[2] == error_of(res)["canonical_string"]
