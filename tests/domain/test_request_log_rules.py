"""The request log's rules (portal.domain.request_log): the buffer writes rows and day counts
together, the retention purge, paging by (time, id), the usage counts, and the comparison
of a string to sign with the server's canonical string."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain import request_log
from portal.domain.applications import create_application
from portal.models import RequestDayCount, RequestRecord, utcnow


@pytest.fixture
def application(partner):
    app, _ = create_application(partner, "Shop")
    return app


def put(application, when, status=200, key_id=7, request_id=None, mode="test"):
    request_log.record(when, request_id or f"req_{abs(hash((when, status, key_id))) % 16**24:024x}",
                       partner_id=application.partner_id, application_id=application.id, api_key_id=key_id,
                       key_masked="test_sk_abcd…wxyz", mode=mode, method="GET", route="/v1/key", path="/v1/key",
                       status=status, error_code=None if status < 400 else "invalid_request",
                       error_message=None, latency_ms=2.0, client_ip="10.0.0.1", idempotency_key=None,
                       replayed=False, user_agent="ua\x00with a NUL", canonical_string=None)


def test_flush_writes_the_rows_and_their_day_counts_in_one_go(application):
    now = utcnow()
    put(application, now)
    put(application, now, status=401)
    put(application, now - timedelta(days=1), key_id=8)
    assert request_log.flush() == 3
    assert request_log.flush() == 0
    assert RequestRecord.select().count() == 3
    assert RequestRecord.get(RequestRecord.status == 401).user_agent == "ua\ufffdwith a NUL"
    days = request_log.daily_counts(application)
    assert len(days) == 14 and days[-1].day == now.date()
    assert (days[-1].succeeded, days[-1].failed, days[-2].total) == (1, 1, 1)
    assert request_log.key_counts(application) == {7: 2, 8: 1}
    assert request_log.today_totals(application.partner_id) == (2, 1)
    assert request_log.counts_by_account(now - timedelta(days=1)) == {application.partner_id: 3}
    put(application, now)  # a second flush adds to the same day's count
    request_log.flush()
    assert request_log.today_totals(application.partner_id) == (3, 1)


def test_the_purge_deletes_what_is_older_than_the_retention(application):
    now = utcnow()
    put(application, now - timedelta(days=31))
    put(application, now - timedelta(days=29))
    request_log.flush()
    assert request_log.purge(now=now, days=30) == 1
    (left,) = RequestRecord.select()
    assert left.created_at > now - timedelta(days=30)
    assert {c.day for c in RequestDayCount.select()} == {(now - timedelta(days=29)).date()}


def test_pages_go_back_by_time_and_id_without_gaps_or_repeats(application):
    same_time = utcnow()
    for i in range(7):
        put(application, same_time if i < 4 else same_time - timedelta(seconds=i), request_id=f"req_{i:024x}")
    request_log.flush()
    seen, cursor = [], None
    while True:
        page = request_log.page(application, before=cursor, limit=3)
        seen += [r.request_id for r in page.records]
        cursor = page.older
        if cursor is None:
            break
        assert request_log.Cursor.parse(cursor.token()) == cursor
    assert sorted(seen) == sorted(f"req_{i:024x}" for i in range(7)) and len(set(seen)) == 7
    assert request_log.Cursor.parse("garbage") is None and request_log.Cursor.parse("2026-01-01~x") is None


def test_find_is_scoped_to_the_partner(application):
    put(application, utcnow(), request_id="req_" + "a" * 24)
    request_log.flush()
    assert request_log.find(application.partner_id, "req_" + "a" * 24) is not None
    assert request_log.find(application.partner_id + 1, "req_" + "a" * 24) is None
    assert request_log.find(application.partner_id, "' OR 1=1 --") is None


CANONICAL = "\n".join(["LOYALTY-HMAC-SHA256-V1", "POST", "/v1/members/mem_1/stamps", "", "app_x", "1700000000",
                       "n" * 16, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])


@pytest.mark.sqlite_only  # a pure function: no SQL involved
@pytest.mark.parametrize(("line", "replacement", "name", "hint"), [
    (1, "post", "method", "upper case"),
    (2, "/v1/members/mem_1/stamps/", "path", "percent-encoded"),
    (3, "b=1&a=2", "query", "sorted by name"),
    (5, "1700000001", "timestamp", "X-Loyalty-Timestamp"),
    (6, "m" * 16, "nonce", "X-Loyalty-Nonce"),
    (7, "0" * 64, "body hash", "exact bytes"),
])
def test_compare_names_the_first_differing_line_and_its_usual_cause(line, replacement, name, hint):
    lines = CANONICAL.split("\n")
    lines[line] = replacement
    result = request_log.compare_strings_to_sign(CANONICAL, "\r\n".join(lines))
    assert (result.line, result.name, result.their_line) == (line + 1, name, replacement)
    assert hint in result.hint


@pytest.mark.sqlite_only  # a pure function: no SQL involved
def test_compare_tells_a_missing_line_a_trailing_newline_and_a_match_apart():
    assert "ends after line 7" in request_log.compare_strings_to_sign(
        CANONICAL, "\n".join(CANONICAL.split("\n")[:7])).hint
    trailing = request_log.compare_strings_to_sign(CANONICAL, CANONICAL + "\n")
    assert trailing.matches and "trailing newline" in trailing.hint
    same = request_log.compare_strings_to_sign(CANONICAL, CANONICAL)
    assert same.matches and "App Secret" in same.hint
    assert request_log.compare_strings_to_sign(CANONICAL, "").line == 1
