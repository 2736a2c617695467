"""Per-key rate limits hold across server processes (DESIGN.md §13): two servers sharing one
database (or one Redis) let exactly the key's limit through in a minute, on SQLite,
PostgreSQL and Redis."""

from __future__ import annotations

import os
import time

import pytest
import requests

from tests.conftest import IN_CI, LiveServer
from tests.reliability.conftest import PartnerClient, run_together

LIMIT = 25
REDIS_URL = os.environ.get("LOYALTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def _away_from_a_minute_boundary() -> None:
    """The windows are whole minutes: start the burst early in one."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def _two_servers(tmp_path, database_url, extra_env=None):
    env = {"LOYALTY_DATABASE_URL": database_url, "LOYALTY_RATE_LIMIT_TEST": str(LIMIT), **(extra_env or {})}
    first = LiveServer(tmp_path / "one", env=env)
    (tmp_path / "one").mkdir()
    first.start()
    (tmp_path / "two").mkdir()
    # The second server shares the first one's data dir secrets (pepper, encryption key).
    second = LiveServer(tmp_path / "one", env=env)
    second.log_path = tmp_path / "two" / "server.log"
    second.start()
    return first, second


def _burst_through_two_servers(tmp_path, database_url, extra_env=None) -> list[int]:
    """Twice the limit of calls with one key, alternating between two server processes
    sharing one database; the statuses they got."""
    first, second = _two_servers(tmp_path, database_url, extra_env)
    try:
        creds = first.demo()
        clients = [PartnerClient(first.url, creds), PartnerClient(second.url, creds)]
        _away_from_a_minute_boundary()
        results = run_together(2 * LIMIT, lambda i: clients[i % 2].get("/v1/key"))
    finally:
        first.stop()
        second.stop()
    assert all(isinstance(r, requests.Response) for r in results), results
    return [r.status_code for r in results]


def test_two_server_processes_let_exactly_the_limit_through_in_a_minute(tmp_path, database_url):
    statuses = _burst_through_two_servers(tmp_path, database_url)
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == LIMIT


@pytest.mark.sqlite_only  # the counts live in Redis; the database's engine plays no part
def test_two_server_processes_counting_in_redis_let_exactly_the_limit_through(tmp_path, database_url):
    if not _redis_answers():
        if IN_CI:
            pytest.fail(f"Redis does not answer at {REDIS_URL} (.ci/run starts it)")
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    statuses = _burst_through_two_servers(tmp_path, database_url, {"LOYALTY_REDIS_URL": REDIS_URL})
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == LIMIT
    from portal import create_app, db
    from portal.models import RateCounter  # nothing was counted in the database

    app = create_app({"DATA_DIR": str(tmp_path / "one"), "DATABASE_URL": database_url})
    with app.app_context():
        assert RateCounter.select().count() == 0
    db.close_all()
