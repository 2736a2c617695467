"""The request log (DESIGN.md §11): every /v1 request, recorded off the request path, and
the queries the portal's request-log and usage views read.

Recording
---------
The API calls `record(...)` once per request with plain values (never a body, a key, a
secret, a signature or an OTP code). That appends a tuple to this process's buffer and
returns: no database work on the request path. A background thread, started lazily in
the process that records (so in each gunicorn worker after the fork, never in the
master), writes the buffer every `FLUSH_EVERY` seconds in one transaction: one batched
INSERT of the rows and one upsert of the day counts they add to. It also flushes at
process exit. A crash (SIGKILL, power loss) loses at most the last `FLUSH_EVERY` seconds
of log rows; it never touches a ledger write, which commits in its own request. Text is
made storable (NUL and unpaired surrogates replaced) and cut to its column's length in
the flusher, not on the request path. Requests whose key did not resolve are filed under
the application their `X-Loyalty-App-Id` names, looked up at flush time (one query per
batch); a request with neither stays with no application: it is stored (the contract
says every request) but no partner sees it, and the retention purge removes it in time.

`flush()` writes what is buffered now, synchronously (tests call it; so does exit);
`discard()` drops what is buffered (the test fixture calls it when a test's database goes).

Why indexes, and why day counts
-------------------------------
The log page reads the newest 50 rows of one application (optionally of one key), then
pages back by (created_at, id). `request_record (application_id, created_at)` and
`(api_key_id, created_at)` make that a walk of the index from its end: the cost depends
on the page size, not on how many rows the table holds. Filters on status, mode and
endpoint are checked during that walk. A lookup by request id uses its own index.

The usage views (14 days per application, 7 days per key, today per partner, and the
operator's counts per partner) would otherwise count up to millions of rows on every page
view. They read `request_day_count` instead: one row per (application, key, mode, day),
kept up to date by the flusher in the same transaction as the rows it counts, so the
chart's query reads at most a few hundred rows whatever the traffic. bench/request_log.py
measures both with a million recorded requests.

Retention
---------
Rows (and day counts) older than `LOYALTY_REQUEST_LOG_DAYS` (default 30) are deleted by
the flusher about once an hour, in chunks so no delete holds the table for long.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import peewee

from portal.db import database, end_request, is_sqlite, write_transaction
from portal.logs import first_line, get_logger
from portal.models import Application, RequestDayCount, RequestRecord, utcnow

log = get_logger(__name__)

FLUSH_EVERY = 0.5  # seconds between writes of the buffer (a crash loses at most this much)
PURGE_EVERY = 3600.0  # seconds between retention purges in one process (jittered)
PURGE_CHUNK = 5000  # rows deleted per statement
MAX_BUFFERED = 100_000  # past this (the database has been away a while) new records are dropped
PAGE_SIZE = 50
CHART_DAYS = 14
KEY_DAYS = 7

# The recorded fields, in the order record() takes them.
FIELDS = (
    "created_at", "request_id", "partner_id", "application_id", "api_key_id", "key_masked", "mode", "method",
    "route", "path", "status", "error_code", "error_message", "latency_ms", "client_ip", "idempotency_key",
    "replayed", "user_agent", "canonical_string",
)
_TEXT_LIMITS = {
    "request_id": 32, "key_masked": 40, "mode": 4, "method": 10, "route": 200, "path": 1000, "error_code": 64,
    "error_message": 2000, "client_ip": 64, "idempotency_key": 255, "user_agent": 300, "canonical_string": 20_000,
}
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


# -- the buffer and its flusher ------------------------------------------------------------


class _Buffer:
    def __init__(self):
        self.lock = threading.Lock()  # guards `pending`
        self.write_lock = threading.Lock()  # one flush at a time, so flush() returns after the write
        self.pending: list[tuple] = []
        self.owner_pid: int | None = None  # the process whose flusher thread runs
        self.wake = threading.Event()
        self.next_purge = 0.0
        self.dropped = 0


_buffer = _Buffer()


def record(created_at: datetime, request_id: str, *, partner_id: int | None, application_id: int | None,
           api_key_id: int | None, key_masked: str | None, mode: str | None, method: str, route: str | None,
           path: str, status: int, error_code: str | None, error_message: str | None, latency_ms: float,
           client_ip: str, idempotency_key: str | None, replayed: bool, user_agent: str | None,
           canonical_string: str | None, app_id: str | None = None) -> None:
    """Buffer one request's record; the flusher writes it within `FLUSH_EVERY` seconds.

    `app_id` is the presented App ID, used only to file a request whose key did not
    resolve under its application. Cheap by design: a tuple appended under a lock.
    """
    row = (created_at, request_id, partner_id, application_id, api_key_id, key_masked, mode, method, route,
           path, status, error_code, error_message, latency_ms, client_ip, idempotency_key, replayed,
           user_agent, canonical_string)
    buf = _buffer
    if buf.owner_pid != os.getpid():
        _start_flusher()
    with buf.lock:
        if len(buf.pending) >= MAX_BUFFERED:
            buf.dropped += 1
            return
        buf.pending.append((database.obj, row, app_id))


def _start_flusher() -> None:
    buf = _buffer
    with buf.lock:
        if buf.owner_pid == os.getpid():
            return
        buf.owner_pid = os.getpid()
        buf.next_purge = time.monotonic() + 60 * random.random()  # first purge within a minute
    thread = threading.Thread(target=_flush_forever, name="request-log-flusher", daemon=True)
    thread.start()


def _flush_forever() -> None:
    buf = _buffer
    pid = os.getpid()
    while buf.owner_pid == pid:
        buf.wake.wait(FLUSH_EVERY)
        buf.wake.clear()
        try:
            flush()
            if time.monotonic() >= buf.next_purge:
                buf.next_purge = time.monotonic() + PURGE_EVERY * (0.75 + 0.5 * random.random())
                if database.obj is not None:
                    purge()
        except Exception as exc:  # keep flushing; the next round retries what it can
            log.warning("request log: flush failed: %s", first_line(exc))
        finally:
            end_request()  # SQLite: the thread keeps its connection for the next round


def flush() -> int:
    """Write every buffered record of the current database now; returns how many.

    Records buffered for another database (a test's app that has gone) are dropped. When
    the write fails (the database is away) the records go back to the buffer for the
    next round.
    """
    buf = _buffer
    with buf.write_lock:
        with buf.lock:
            pending, buf.pending = buf.pending, []
            dropped, buf.dropped = buf.dropped, 0
        if dropped:
            log.warning("request log: %d records dropped (the buffer was full)", dropped)
        current = database.obj
        mine = [(row, app_id) for db, row, app_id in pending if db is current]
        if not mine:
            return 0
        try:
            _write(mine)
        except Exception:
            with buf.lock:
                if len(buf.pending) + len(mine) <= MAX_BUFFERED:
                    buf.pending[:0] = [(current, row, app_id) for row, app_id in mine]
            raise
        return len(mine)


def discard() -> None:
    """Drop whatever is buffered (nothing is written)."""
    with _buffer.lock:
        _buffer.pending = []


def _reset_after_fork() -> None:
    # A child (a gunicorn worker) starts with an empty buffer and starts its own flusher
    # on its first record; the locks may have been held by a parent thread at fork time.
    global _buffer
    _buffer = _Buffer()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    if _buffer.owner_pid != os.getpid() or not _buffer.pending:
        return
    try:
        flush()
    except Exception as exc:
        log.warning("request log: flush at exit failed: %s", first_line(exc))


def _storable(value, limit: int):
    if value is None:
        return None
    text = _UNSTORABLE.sub("\ufffd", str(value))
    return text[:limit]


_COLUMNS = ", ".join(f'"{name}"' for name in FIELDS)


def _write(items: list[tuple[tuple, str | None]]) -> None:
    """One transaction: the rows in one batched INSERT, the day counts in one upsert.

    The rows go through the driver's batch call with SQL written once, not through a
    peewee query: building a 500-row peewee INSERT cost ~120 µs of Python per row, which
    every worker would pay out of the time it has for requests.
    """
    wanted = {app_id for row, app_id in items if row[3] is None and app_id}
    owners = {}
    if wanted:
        owners = {app_id: (partner_id, ident) for ident, app_id, partner_id in
                  Application.select(Application.id, Application.app_id, Application.partner)
                  .where(Application.app_id.in_(sorted(wanted)[:1000])).tuples()}
    sqlite = is_sqlite()
    rows = []
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    limits = [_TEXT_LIMITS.get(name) for name in FIELDS]
    for row, app_id in items:
        values = list(row)
        if values[3] is None and app_id in owners:
            values[2], values[3] = owners[app_id]
        for index, limit in enumerate(limits):
            if limit is not None and values[index] is not None:
                values[index] = _storable(values[index], limit)
        created_at = values[0]
        if values[3] is not None:
            group = (values[3], values[2], values[4] or 0, values[6] or "", created_at.date())
            counts[group][0 if values[10] < 400 else 1] += 1
        values[0] = str(created_at) if sqlite else created_at  # peewee's SQLite text form
        values[7] = values[7] or "?"
        values[9] = values[9] or "/"
        values[14] = values[14] or ""
        values[16] = bool(values[16])
        rows.append(tuple(values))
    with write_transaction():  # on SQLite: the writer lock, then a flush after it (group commit)
        cursor = database.cursor()
        if sqlite:
            marks = ", ".join("?" * len(FIELDS))
            cursor.executemany(f'INSERT INTO "request_record" ({_COLUMNS}) VALUES ({marks})', rows)
        else:
            from psycopg2.extras import execute_values

            execute_values(cursor, f'INSERT INTO "request_record" ({_COLUMNS}) VALUES %s', rows, page_size=500)
        if counts:
            day_rows = [{"application_id": a, "partner_id": p, "api_key_id": k, "mode": m, "day": d,
                         "succeeded": ok, "failed": failed} for (a, p, k, m, d), (ok, failed) in counts.items()]
            RequestDayCount.insert_many(day_rows).on_conflict(
                conflict_target=[RequestDayCount.application_id, RequestDayCount.day, RequestDayCount.api_key_id,
                                 RequestDayCount.mode],
                update={RequestDayCount.succeeded: RequestDayCount.succeeded + peewee.EXCLUDED.succeeded,
                        RequestDayCount.failed: RequestDayCount.failed + peewee.EXCLUDED.failed},
            ).execute()


def purge(now: datetime | None = None, days: int | None = None) -> int:
    """Delete records (and day counts) older than `days` (LOYALTY_REQUEST_LOG_DAYS);
    returns how many records went."""
    if days is None:
        from portal.config import current_settings

        days = current_settings().request_log_days
    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = 0
    while True:
        chunk = RequestRecord.select(RequestRecord.id).where(RequestRecord.created_at < cutoff).limit(PURGE_CHUNK)
        with write_transaction():
            n = RequestRecord.delete().where(RequestRecord.id.in_(chunk)).execute()
        deleted += n
        if n < PURGE_CHUNK:
            break
    with write_transaction():
        RequestDayCount.delete().where(RequestDayCount.day < cutoff.date()).execute()
    if deleted:
        log.info("request log: %d records older than %d days deleted", deleted, days)
    return deleted


# -- reading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the (created_at, id) of its last row. As text `<iso time>~<id>`."""

    created_at: datetime
    id: int

    def token(self) -> str:
        return f"{self.created_at.isoformat()}~{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        """The cursor a token names, or None for anything malformed."""
        if not token or len(token) > 60 or "~" not in token:
            return None
        when, _, ident = token.partition("~")
        if not ident.isdigit() or len(ident) > 18:
            return None
        try:
            return cls(datetime.fromisoformat(when).replace(tzinfo=None), int(ident))
        except ValueError:
            return None


@dataclass
class Page:
    records: list
    older: Cursor | None  # the cursor of the next (older) page, None at the end


def page(application: Application, *, key_id: int | None = None, status: str | None = None,
         mode: str | None = None, route: str | None = None, before: Cursor | None = None,
         limit: int = PAGE_SIZE) -> Page:
    """One application's records, newest first, filtered, `limit` at a time."""
    query = RequestRecord.select().where(RequestRecord.application_id == application.id)
    if key_id is not None:
        query = query.where(RequestRecord.api_key_id == key_id)
    if status == "succeeded":
        query = query.where(RequestRecord.status < 400)
    elif status == "failed":
        query = query.where(RequestRecord.status >= 400)
    if mode:
        query = query.where(RequestRecord.mode == mode)
    if route:
        query = query.where(RequestRecord.route == route)
    if before is not None:
        # `created_at <= t` is the index's range (walked from its end); the OR only sorts out
        # the rows of that very instant, so neither engine falls back to a scan.
        query = query.where((RequestRecord.created_at <= before.created_at)
                            & ((RequestRecord.created_at < before.created_at) | (RequestRecord.id < before.id)))
    records = list(query.order_by(RequestRecord.created_at.desc(), RequestRecord.id.desc()).limit(limit + 1))
    older = None
    if len(records) > limit:
        records = records[:limit]
        older = Cursor(records[-1].created_at, records[-1].id)
    return Page(records, older)


_REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


def find(partner_id: int, request_id: str) -> RequestRecord | None:
    """The partner's record of a request id (another partner's is None, like no record)."""
    request_id = (request_id or "").strip()
    if not _REQUEST_ID.match(request_id):
        return None
    return (RequestRecord.select()
            .where((RequestRecord.request_id == request_id) & (RequestRecord.partner_id == partner_id))
            .order_by(RequestRecord.id.desc()).first())


@dataclass(frozen=True)
class Day:
    day: date
    succeeded: int
    failed: int

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


def daily_counts(application: Application, days: int = CHART_DAYS, today: date | None = None) -> list[Day]:
    """Succeeded and failed requests per UTC day, oldest first, the last `days` days
    (today included), zeros for quiet days."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    rows = (RequestDayCount
            .select(RequestDayCount.day, peewee.fn.SUM(RequestDayCount.succeeded), peewee.fn.SUM(RequestDayCount.failed))
            .where((RequestDayCount.application_id == application.id) & (RequestDayCount.day >= first))
            .group_by(RequestDayCount.day).tuples())
    by_day = {_as_date(day): (int(ok or 0), int(failed or 0)) for day, ok, failed in rows}
    return [Day(d, *by_day.get(d, (0, 0))) for d in (first + timedelta(days=i) for i in range(days))]


def key_counts(application: Application, days: int = KEY_DAYS, today: date | None = None) -> dict[int, int]:
    """Requests per key id over the last `days` days (today included)."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    total = peewee.fn.SUM(RequestDayCount.succeeded + RequestDayCount.failed)
    rows = (RequestDayCount.select(RequestDayCount.api_key_id, total)
            .where((RequestDayCount.application_id == application.id) & (RequestDayCount.day >= first)
                   & (RequestDayCount.api_key_id != 0))
            .group_by(RequestDayCount.api_key_id).tuples())
    return {key_id: int(n or 0) for key_id, n in rows}


def today_totals(partner_id: int, today: date | None = None) -> tuple[int, int]:
    """(requests, errors) today (UTC) over all the partner's applications."""
    today = today or utcnow().date()
    ok, failed = (RequestDayCount
                  .select(peewee.fn.SUM(RequestDayCount.succeeded), peewee.fn.SUM(RequestDayCount.failed))
                  .where((RequestDayCount.partner_id == partner_id) & (RequestDayCount.day == today))
                  .tuples().get())
    ok, failed = int(ok or 0), int(failed or 0)
    return ok + failed, failed


def counts_by_account(since: datetime) -> dict[int, int]:
    """Requests per partner account (id → count) on the UTC days from `since`'s day to
    today: for the operator console. Day counts make it cheap; a day is its precision."""
    total = peewee.fn.SUM(RequestDayCount.succeeded + RequestDayCount.failed)
    rows = (RequestDayCount.select(RequestDayCount.partner_id, total)
            .where(RequestDayCount.day >= since.date()).group_by(RequestDayCount.partner_id).tuples())
    return {partner_id: int(n or 0) for partner_id, n in rows}


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# -- comparing a partner's string to sign with the server's ---------------------------------

LINE_NAMES = ("scheme", "method", "path", "query", "app id", "timestamp", "nonce", "body hash")

LINE_HINTS = {
    "scheme": "The first line is always exactly LOYALTY-HMAC-SHA256-V1.",
    "method": "The method is written in upper case, and must be the method actually sent: "
              "a redirect or a proxy can turn a POST into a GET.",
    "path": "The path is percent-decoded once, then every byte except A-Z a-z 0-9 - . _ ~ / is "
            "percent-encoded as UTF-8 with upper-case hex (a space is %20). Sign the path the server "
            "sees: a base URL with a path prefix, a trailing slash or a proxy that rewrites the path all "
            "change it. The query string is not part of this line.",
    "query": "The query is split into name=value pairs, each name and value percent-encoded like the path "
             "(but / is encoded too, a space is %20, never +), sorted by name and then by value, and joined "
             "with &. Blank values stay (name=). No query means an empty line.",
    "app id": "The App ID line must be the value sent in X-Loyalty-App-Id.",
    "timestamp": "The timestamp line must be the value sent in X-Loyalty-Timestamp, whole unix seconds; "
                 "sign again for every attempt.",
    "nonce": "The nonce line must be the value sent in X-Loyalty-Nonce; use a new nonce for every request "
             "and every retry.",
    "body hash": "The body hash is the lowercase hex SHA-256 of the exact bytes sent. Serialize the JSON once "
                 "and send those same bytes (re-serializing changes spacing or key order); with no body it is "
                 "the hash of the empty string.",
}


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a string to sign with the server's canonical string.
    `line` is the first differing line's number (1-based), None when they match."""

    line: int | None
    name: str | None
    server_line: str | None
    their_line: str | None
    hint: str
    server_lines: tuple[str, ...]
    their_lines: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return self.line is None


def compare_strings_to_sign(server: str, theirs: str) -> Comparison:
    """Which line of `theirs` first differs from the server's canonical string, and what
    usually causes that line to differ. Line ends are compared as `\\n` (a pasted string
    arrives with `\\r\\n` from a browser form)."""
    theirs = (theirs or "").replace("\r\n", "\n").replace("\r", "\n")
    server_lines = tuple(server.split("\n"))
    trailing = theirs.endswith("\n")
    their_lines = tuple(theirs.rstrip("\n").split("\n")) if theirs.strip("\n") else ()
    for index, expected in enumerate(server_lines):
        got = their_lines[index] if index < len(their_lines) else None
        if got != expected:
            name = LINE_NAMES[index] if index < len(LINE_NAMES) else None
            hint = LINE_HINTS.get(name, "")
            if got is None:
                hint = (f"Your string ends after line {len(their_lines)}: the canonical string has 8 lines "
                        f"joined by a single newline. " + hint)
            elif got.strip() == expected:
                hint = "The line differs only in spaces at its start or end. " + hint
            return Comparison(index + 1, name, expected, got, hint, server_lines, their_lines)
    if len(their_lines) > len(server_lines):
        index = len(server_lines)
        return Comparison(index + 1, None, None, their_lines[index],
                          "Your string has more than 8 lines: nothing follows the body hash.", server_lines,
                          their_lines)
    if trailing:
        return Comparison(None, None, None, None,
                          "The lines match, but what you pasted ends with a newline: if your code signs it so, "
                          "remove it (the canonical string has no trailing newline). Otherwise the signature "
                          "was made with another secret.", server_lines, their_lines)
    return Comparison(None, None, None, None,
                      "Your string matches the server's, so the signature was made with a different key: check "
                      "that you sign with this application's current App Secret (as UTF-8), that the result is "
                      "lowercase hex HMAC-SHA256, and that the header reads v1=<hex>.", server_lines, their_lines)
