"""The database going away: a request caught mid-transaction answers 503 in the error shape
and leaves no ledger entry; while it is away every page answers 503; when it comes back the
same server serves again, no restart. A wrong database URL is one line at start."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import requests

from tests.reliability.conftest import run_together

LEAKS = ("Traceback", "psycopg2", "FATAL", "SELECT", "UPDATE ", "127.0.0.1:5432")


@pytest.mark.postgres_only
def test_a_database_outage_mid_request_is_a_503_without_a_partial_write_and_the_server_recovers(
        own_server, own_partner, database_url, postgres_databases):
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    member = own_partner.create_member()
    assert own_partner.post(f"/v1/members/{member}/cashback/credit", {"amount": 1000}).status_code == 201

    # Hold the member's row so the redeem stops inside its transaction, after its request
    # was authenticated and its idempotency key claimed.
    locker = psycopg2.connect(database_url)
    with locker.cursor() as cur:
        cur.execute("SELECT id FROM member WHERE public_id = %s FOR UPDATE", (member,))
    result: dict = {}
    redeem = threading.Thread(target=lambda: result.setdefault("response", own_partner.post(
        f"/v1/members/{member}/cashback/redeem", {"amount": 100}, **{"Idempotency-Key": "outage-1"})))
    redeem.start()
    _wait_for_a_backend_waiting_on_a_lock(postgres_databases, name)

    postgres_databases.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    postgres_databases.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    redeem.join(timeout=30)
    locker.close()

    try:
        response = result["response"]
        assert response.status_code == 503
        _assert_api_unavailable(response)

        # While it is away: the API, the portal and the health check all say so.
        away = own_partner.get(f"/v1/members/{member}/cashback")
        assert away.status_code == 503
        _assert_api_unavailable(away)
        page = requests.get(own_server.url + "/login", timeout=10)
        assert page.status_code == 503 and "Temporarily unavailable" in page.text
        assert requests.get(own_server.url + "/healthz", timeout=10).status_code == 503
        for text in (response.text, away.text, page.text):
            assert not any(leak in text for leak in LEAKS), text
    finally:
        postgres_databases.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    # Back: the same server processes answer, with nothing half-written.
    statuses = [s.status_code for s in run_together(8, lambda i: own_partner.get(f"/v1/members/{member}/cashback"))]
    assert statuses == [200] * 8
    assert own_partner.cashback_balance(member) == 1000
    assert [e["amount"] for e in own_partner.cashback_history(member)] == [1000]
    # The retry of the failed request, with its Idempotency-Key, runs now: its first attempt
    # died with its connection, and so did the advisory lock that marked it as running.
    retry = own_partner.post(f"/v1/members/{member}/cashback/redeem", {"amount": 100},
                             **{"Idempotency-Key": "outage-1"})
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert own_partner.cashback_balance(member) == 900
    assert "Traceback" not in own_server.log_text


def _assert_api_unavailable(response) -> None:
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert error["code"] == "service_unavailable"
    assert error["request_id"].startswith("req_")
    assert response.headers["X-Request-Id"] == error["request_id"]
    assert response.headers.get("Retry-After")


def _wait_for_a_backend_waiting_on_a_lock(postgres_databases, name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        waiting = postgres_databases.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (name,))
        if waiting[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("the redeem never reached the locked row")


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/nothing_listens_here",
    "postgresql://postgres@127.0.0.1:notaport/db",
    "postgresql://postgres@127.0.0.1:5432/",
    "mysql://root@127.0.0.1/loyalty",
    "sqlite:////nonexistent-dir/sub/loyalty.db",
])
@pytest.mark.parametrize("command", [["migrate"], ["serve", "--port", "1"]])
def test_a_wrong_database_url_is_one_line_at_start(tmp_path, url, command):
    env = {"PATH": "/usr/bin:/bin", "LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": url,
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "portal.cli", *command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    # The first line names the database (password masked) and the data dir; then one error.
    assert len(lines) == 2 and "Using database " in lines[0] and lines[1].startswith("Error:"), done.stderr
