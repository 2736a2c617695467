"""`Idempotency-Key` for every POST (DESIGN.md §5), kept in the IdempotencyRecord table so
every server process agrees.

- first use: a row is inserted `in_progress` (the unique index on (application, mode, key)
  makes exactly one concurrent request win), the endpoint runs, and its response is stored;
- the same key with the same method, path and body within 24 h: the stored response again,
  with `Idempotent-Replayed: true` (a stored error's `X-Request-Id` is the original
  request's, as in its body);
- the same key with a different request: 409 `idempotency_key_reused`;
- the same key while the first request still runs: 409 `idempotency_request_in_progress`.

Normally the endpoint's writes and its stored response commit in one transaction. An
endpoint declared `transactional=False` (one that talks to the outside world, like OTP
delivery, and must not hold a transaction meanwhile) commits its own writes, and its
response is stored afterwards (one UPDATE, committed on its own).

Responses with status >= 500 or 429 are not stored (the row is deleted), so a retry after
a server error, or after a rate limit's Retry-After, runs again. A row left `in_progress` by a crashed process is taken over after
STALE_AFTER, long enough that no live request is still running (the server times out
requests at 60 s). On PostgreSQL the request running a key also holds an advisory lock on
it, so a row whose lock is free belongs to a request that died (a killed process, or a
connection cut by a database outage) and is taken over at once.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta

from flask import Response

from portal.api.errors import ApiError, invalid_request
from portal.db import UNAVAILABLE_ERRORS, database, is_postgres, write_transaction
from portal.logs import REQUEST_ID_HEADER
from portal.models import IdempotencyRecord, utcnow

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LIFETIME = timedelta(hours=24)
STALE_AFTER = timedelta(seconds=90)
MAX_KEY_LENGTH = 255
CLEANUP_EVERY = 300.0  # seconds between deletions of expired records, per process


def idempotency_key(headers) -> str | None:
    """The header's value, None when absent; 400 when empty or too long."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if not (1 <= len(value) <= MAX_KEY_LENGTH) or not value.isprintable():
        raise invalid_request(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters.", HEADER)
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "surrogateescape"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def run_idempotent(caller, key: str, method: str, path: str, body: bytes, run, *,
                   transactional: bool = True) -> Response:
    """Run `run()` (returning a Response) at most once for (application, mode, key);
    inside one write transaction with storing its response unless `transactional=False`."""
    print_ = fingerprint(method, path, body)
    with _running_lock(caller, key) as lock:
        return _run_once(caller, key, print_, lock, run, transactional)


def _run_once(caller, key: str, print_: str, lock: bool | None, run, transactional: bool) -> Response:
    record = _claim(caller, key, print_, lock)
    if record is not None:
        return _answer_existing(record, print_)
    # The endpoint's writes and the stored response commit together: a process killed
    # between the two would otherwise leave a write whose key a retry (after STALE_AFTER)
    # would run a second time. A non-transactional endpoint accepts that risk so as not to
    # hold the write lock (SQLite) or its row locks (PostgreSQL) while it waits on others.
    try:
        with write_transaction() if transactional else nullcontext():
            response = run()
            if response.status_code >= 500 or response.status_code == 429:
                raise _NotStored(response)
            # Without the view's transaction this one statement commits on its own.
            IdempotencyRecord.update(
                state="done", status_code=response.status_code, response_body=response.get_data(as_text=True),
            ).where(_where(caller, key)).execute()
    except _NotStored as failed:
        _forget(caller, key)
        return failed.response
    except BaseException:
        try:
            _forget(caller, key)
        except UNAVAILABLE_ERRORS:  # the database is away: the row goes stale and is taken over
            pass
        raise
    return response


class _NotStored(Exception):
    """A 5xx or 429 response: roll back what the endpoint wrote and forget the key."""

    def __init__(self, response: Response):
        self.response = response


def _where(caller, key):
    return ((IdempotencyRecord.application == caller.application.id)
            & (IdempotencyRecord.mode == caller.mode) & (IdempotencyRecord.key == key))


_next_cleanup = 0.0


def _delete_expired() -> None:
    """Every few minutes per process, drop records past their 24 h (jittered so several
    processes do not all clean up at once)."""
    global _next_cleanup
    mono = time.monotonic()
    if mono < _next_cleanup:
        return
    _next_cleanup = mono + CLEANUP_EVERY * (0.5 + random.random())
    IdempotencyRecord.delete().where(IdempotencyRecord.expires_at <= utcnow()).execute()


def running_lock_id(application_id: int, mode: str, key: str) -> int:
    """The PostgreSQL advisory lock id of one (application, mode, key)."""
    digest = hashlib.sha256(f"idempotency:{application_id}:{mode}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _running_lock(caller, key: str):
    """PostgreSQL: try the key's session advisory lock, held for the whole run (True when
    we hold it, False when another request does). SQLite: None (one machine; STALE_AFTER)."""
    if not is_postgres():
        yield None
        return
    lock_id = running_lock_id(caller.application.id, caller.mode, key)
    held = bool(database.execute_sql("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                database.execute_sql("SELECT pg_advisory_unlock(%s)", (lock_id,))
            except UNAVAILABLE_ERRORS:
                pass  # the connection is gone, and its session's lock with it


def _claim(caller, key: str, print_: str, lock: bool | None = None) -> IdempotencyRecord | None:
    """Insert our in-progress row; None when we own the key now, else the existing row."""
    _delete_expired()
    if lock is False:
        # Another live request holds the key: it is running it (or has just finished).
        record = IdempotencyRecord.get_or_none(_where(caller, key))
        if record is None or record.expires_at <= utcnow():
            raise ApiError(409, "idempotency_request_in_progress",
                           "A request with this Idempotency-Key is being processed; retry shortly.", param=HEADER)
        return record
    for _ in range(3):
        now = utcnow()
        inserted = (
            IdempotencyRecord.insert(
                application=caller.application.id, mode=caller.mode, key=key, fingerprint=print_,
                state="in_progress", created_at=now, expires_at=now + LIFETIME,
            ).on_conflict_ignore().as_rowcount().execute()
        )
        if inserted == 1:
            return None
        record = IdempotencyRecord.get_or_none(_where(caller, key))
        if record is None:  # it was deleted between our insert and read: try again
            continue
        expired = record.expires_at <= now
        # Holding the key's lock while the row is in progress means its owner died.
        abandoned = record.state == "in_progress" and (lock is True or record.created_at <= now - STALE_AFTER)
        if not (expired or abandoned):
            return record
        # Take over an expired or abandoned row; the conditional delete lets one taker win.
        with database.atomic():
            IdempotencyRecord.delete().where(
                _where(caller, key) & (IdempotencyRecord.id == record.id)
            ).execute()
    raise ApiError(409, "idempotency_request_in_progress",
                   "A request with this Idempotency-Key is being processed; retry shortly.")


def _answer_existing(record: IdempotencyRecord, print_: str) -> Response:
    if record.fingerprint != print_:
        raise ApiError(409, "idempotency_key_reused",
                       "This Idempotency-Key was used for a different request (method, path or body); "
                       "use a new key for a new request.", param=HEADER)
    if record.state != "done":
        raise ApiError(409, "idempotency_request_in_progress",
                       "A request with this Idempotency-Key is still being processed; retry shortly.",
                       param=HEADER)
    response = Response(record.response_body, status=record.status_code, mimetype="application/json")
    response.headers[REPLAYED_HEADER] = "true"
    original_id = _stored_request_id(record.response_body)
    if original_id is not None:  # the header then names the same request as the body
        response.headers[REQUEST_ID_HEADER] = original_id
    return response


def _stored_request_id(body: str | None) -> str | None:
    """The `error.request_id` of a stored error body (the original request's), if any.
    A stored success body names no request, and its replay keeps its own request id."""
    try:
        error = json.loads(body or "").get("error")
    except (ValueError, AttributeError):
        return None
    rid = error.get("request_id") if isinstance(error, dict) else None
    return rid if isinstance(rid, str) else None


def _forget(caller, key: str) -> None:
    IdempotencyRecord.delete().where(_where(caller, key) & (IdempotencyRecord.state == "in_progress")).execute()
