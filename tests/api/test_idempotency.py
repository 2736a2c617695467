"""Idempotency-Key on POST (DESIGN.md §5): replay, conflict, in progress, scope."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest

from portal.api.idempotency import fingerprint, running_lock_id
from portal.models import Application, IdempotencyRecord, Member, OtpSend, utcnow
from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def test_same_key_and_request_replays_the_stored_response(app, api):
    first = api.post("/v1/members", json={"email": "idem@example.com"}, headers={"Idempotency-Key": "create-1"})
    again = api.post("/v1/members", json={"email": "idem@example.com"}, headers={"Idempotency-Key": "create-1"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    with app.app_context():
        assert Member.select().count() == 1


def test_same_key_with_a_different_body_is_idempotency_key_reused(api):
    api.post("/v1/members", json={"email": "one@example.com"}, headers={"Idempotency-Key": "k"})
    response = api.post("/v1/members", json={"email": "two@example.com"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_reused"


def test_same_key_on_a_different_path_is_idempotency_key_reused(api):
    member = api.post("/v1/members", json={"email": "p@example.com"}, headers={"Idempotency-Key": "k2"}).get_json()
    response = api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"}, headers={"Idempotency-Key": "k2"})
    assert error_of(response)["code"] == "idempotency_key_reused"


def test_retry_while_the_first_request_runs_is_idempotency_request_in_progress(app, api, database_url):
    body = b'{"email":"slow@example.com"}'
    with app.app_context():
        application = Application.get(Application.app_id == api.creds.app_id)
        IdempotencyRecord.create(application=application, mode="test", key="slow", state="in_progress",
                                 fingerprint=fingerprint("POST", "/v1/members", body),
                                 expires_at=utcnow() + timedelta(hours=24))
    with _first_request_still_running(database_url, application.id, "test", "slow"):
        response = api.post("/v1/members", data=body, content_type="application/json",
                            headers={"Idempotency-Key": "slow"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_request_in_progress"


def test_concurrent_requests_with_one_key_create_one_member(live_server):
    """Several processes' worth of simultaneous retries: one member, no 5xx."""
    import requests

    from tests.api.helpers import SignedAuth

    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    results = []

    def post():
        results.append(requests.post(live_server.url + "/v1/members", json={"email": "race@example.com"},
                                     headers={"Idempotency-Key": "race-1"}, auth=auth, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409}, statuses
    created = {r.json()["id"] for r in results if r.status_code == 201}
    assert len(created) == 1
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_request_in_progress"
    listed = requests.get(live_server.url + "/v1/members?email=race%40example.com", auth=auth, timeout=30).json()
    assert len(listed["data"]) == 1


def test_an_abandoned_in_progress_key_is_taken_over(app, api):
    body = b'{"email":"crash@example.com"}'
    with app.app_context():
        application = Application.get(Application.app_id == api.creds.app_id)
        IdempotencyRecord.create(application=application, mode="test", key="crashed", state="in_progress",
                                 fingerprint=fingerprint("POST", "/v1/members", body),
                                 created_at=utcnow() - timedelta(minutes=5), expires_at=utcnow() + timedelta(hours=23))
    response = api.post("/v1/members", data=body, content_type="application/json", headers={"Idempotency-Key": "crashed"})
    assert response.status_code == 201


def test_keys_older_than_24_hours_are_forgotten(app, api):
    api.post("/v1/members", json={"email": "old@example.com"}, headers={"Idempotency-Key": "old"})
    with app.app_context():
        IdempotencyRecord.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    response = api.post("/v1/members", json={"email": "new@example.com"}, headers={"Idempotency-Key": "old"})
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers


def test_keys_are_scoped_to_application_and_mode(app, client, api, creds):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    other = SignedClient(client, create_credentials(app, business="Other"))
    for signed in (api, prod, other):
        response = signed.post("/v1/members", json={"email": "scoped@example.com"}, headers={"Idempotency-Key": "same"})
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers


def test_failed_request_is_stored_and_replayed_too(api):
    first = api.post("/v1/members", json={"email": "dup@example.com"})
    assert first.status_code == 201
    conflict = api.post("/v1/members", json={"email": "dup@example.com"}, headers={"Idempotency-Key": "dup"})
    again = api.post("/v1/members", json={"email": "dup@example.com"}, headers={"Idempotency-Key": "dup"})
    assert conflict.status_code == again.status_code == 409
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_replayed_error_carries_the_original_request_id_in_header_and_body(api):
    """The request id a partner quotes from a replayed error is the one of the request that
    produced it, in the header as in the body."""
    assert api.post("/v1/members", json={"email": "rid@example.com"}).status_code == 201
    first = api.post("/v1/members", json={"email": "rid@example.com"}, headers={"Idempotency-Key": "rid"})
    again = api.post("/v1/members", json={"email": "rid@example.com"}, headers={"Idempotency-Key": "rid"})
    assert again.headers["Idempotent-Replayed"] == "true"
    original = first.headers["X-Request-Id"]
    assert error_of(first)["request_id"] == original
    assert error_of(again)["request_id"] == original
    assert again.headers["X-Request-Id"] == original


def test_a_rate_limited_request_is_not_stored_so_a_retry_after_retry_after_runs(app, api):
    """A 429 says "later": the same key must work once the wait is over."""
    member = api.post("/v1/members", json={"email": "wait@example.com"}).get_json()
    path = f"/v1/members/{member['id']}/otp"
    assert api.post(path, json={"channel": "email"}).status_code == 200
    limited = api.post(path, json={"channel": "email"}, headers={"Idempotency-Key": "after-cooldown"})
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "otp_cooldown"
    with app.app_context():
        assert IdempotencyRecord.select().where(IdempotencyRecord.key == "after-cooldown").count() == 0
        OtpSend.update(created_at=utcnow() - timedelta(minutes=1)).execute()  # the cooldown has passed
    retried = api.post(path, json={"channel": "email"}, headers={"Idempotency-Key": "after-cooldown"})
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.get_json()["object"] == "otp"


@pytest.mark.sqlite_only  # input validation
def test_idempotency_key_of_the_wrong_length_is_invalid_request(api):
    response = api.post("/v1/members", json={"email": "long@example.com"}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert error_of(response)["param"] == "Idempotency-Key"


def test_expired_records_are_deleted(app, api):
    from portal.api import idempotency

    api.post("/v1/members", json={"email": "gone@example.com"}, headers={"Idempotency-Key": "gone"})
    with app.app_context():
        IdempotencyRecord.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    idempotency._next_cleanup = 0.0  # the next POST with a key is due to clean up
    api.post("/v1/members", json={"email": "kept@example.com"}, headers={"Idempotency-Key": "kept"})
    with app.app_context():
        assert [r.key for r in IdempotencyRecord.select()] == ["kept"]


@contextmanager
def _first_request_still_running(database_url: str, application_id: int, mode: str, key: str):
    """On PostgreSQL a running request holds its key's advisory lock (a row whose lock is
    free belongs to a request that died); hold it from another session as one would."""
    if not database_url.startswith("postgresql"):
        yield
        return
    import psycopg2

    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (running_lock_id(application_id, mode, key),))
        yield
    finally:
        conn.close()


def test_a_key_whose_request_died_is_taken_over_at_once_on_postgresql(app, api, engine):
    """An in-progress row nobody holds the lock of (its process was killed, or its connection
    cut) is run again straight away on PostgreSQL; SQLite waits for it to go stale."""
    body = b'{"email":"died@example.com"}'
    with app.app_context():
        application = Application.get(Application.app_id == api.creds.app_id)
        IdempotencyRecord.create(application=application, mode="test", key="died", state="in_progress",
                                 fingerprint=fingerprint("POST", "/v1/members", body),
                                 expires_at=utcnow() + timedelta(hours=24))
    response = api.post("/v1/members", data=body, content_type="application/json", headers={"Idempotency-Key": "died"})
    assert response.status_code == (201 if engine == "postgres" else 409)
