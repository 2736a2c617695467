"""Fixed-window request counters shared by every server process (DESIGN.md §13).

A subject (an API key, an address reporting exposed keys) may make `limit` requests per
window of `period` seconds. Windows are aligned to the clock (a minute limit resets at
every whole minute), so `RateLimit-Reset` is known without asking the store again.

- With `LOYALTY_REDIS_URL`, the counts live in Redis through the `limits` library's
  storage and connection pool: one atomic INCR per request (the window's key is named by
  its start, and gets its expiry on its first count).
- Otherwise in the database: one row per subject and window, counted by
  `INSERT … ON CONFLICT DO UPDATE SET n = n + 1 RETURNING n`, which is atomic on SQLite
  (≥ 3.35) and PostgreSQL alike. Old windows are swept about once a minute per process.

Both are exact across processes: every request gets its own count, and the first `limit`
counts of a window are the ones let through. A subject found over its limit is remembered
in this process until its window ends, so a flood of refused calls costs no writes.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import peewee

from portal.config import current_settings
from portal.db import SQLITE_WRITE_LOCK, database, ephemeral_write
from portal.logs import first_line, get_logger
from portal.models import RateCounter

log = get_logger("portal.rate_limits")

SWEEP_EVERY = 60.0  # seconds between deletions of old windows in one process
KEEP_WINDOWS = 3600  # seconds of old windows kept before a sweep deletes them


@dataclass(frozen=True)
class Window:
    """One subject's standing in the current window."""

    limit: int
    count: int  # requests counted in this window, this one included
    reset: int  # seconds until the window ends (≥ 1)

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        """The RateLimit-* headers (and Retry-After once over the limit)."""
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset)}
        if not self.allowed:
            headers["Retry-After"] = str(self.reset)
        return headers


def _window(period: int, now: float) -> tuple[int, int]:
    start = int(now) // period * period
    return start, max(1, start + period - int(now))


# -- the stores ---------------------------------------------------------------------------

_SQL: dict[tuple[type, str], str] = {}
_next_sweep = 0.0


def _sql(name: str) -> str:
    key = (type(database.obj), name)
    if key not in _SQL:
        if name == "hit":
            query = (RateCounter.insert(subject="", window_start=0, n=1)
                     .on_conflict(conflict_target=[RateCounter.subject, RateCounter.window_start],
                                  update={RateCounter.n: RateCounter.n + 1})
                     .returning(RateCounter.n))
        else:  # "peek"
            query = RateCounter.select(RateCounter.n).where(
                (RateCounter.subject == "") & (RateCounter.window_start == 0))
        _SQL[key] = query.sql()[0]
    return _SQL[key]


def _database_hit(subject: str, start: int, connection=None) -> int:
    global _next_sweep
    mono = time.monotonic()
    if mono >= _next_sweep:
        _next_sweep = mono + SWEEP_EVERY * (0.5 + random.random())
        RateCounter.delete().where(RateCounter.window_start < start - KEEP_WINDOWS).execute()
    if connection is not None:  # the gate's: inside its nonce transaction, holding the writer lock
        row = connection.execute(_sql("hit"), (subject, start, 1, 1)).fetchone()
    elif isinstance(database.obj, peewee.SqliteDatabase):
        # The one writer lock (the gate's own count passes its transaction's connection
        # instead, above); a count is ephemeral like the nonce (docs/production.md, "Durability").
        with SQLITE_WRITE_LOCK, ephemeral_write():
            row = database.execute_sql(_sql("hit"), (subject, start, 1, 1)).fetchone()
    else:
        row = database.execute_sql(_sql("hit"), (subject, start, 1, 1)).fetchone()
    return int(row[0])


def _database_peek(subject: str, start: int) -> int:
    row = database.execute_sql(_sql("peek"), (subject, start)).fetchone()
    return int(row[0]) if row else 0


_redis = {}  # url -> limits storage, one per process (redis-py reconnects after a fork)
_redis_lock = threading.Lock()  # the first requests' threads must not import redis at once


def _redis_storage(url: str):
    storage = _redis.get(url)
    if storage is None:
        with _redis_lock:
            storage = _redis.get(url)
            if storage is None:
                from limits.storage import storage_from_string

                storage = _redis[url] = storage_from_string(url)
    return storage


_redis_warned_at = 0.0


def _warn_redis_away(exc: Exception) -> None:
    """One warning a minute per process while Redis does not answer."""
    global _redis_warned_at
    if time.monotonic() - _redis_warned_at >= 60:
        _redis_warned_at = time.monotonic()
        log.warning("rate limit: Redis unavailable (%s); counting in the database meanwhile", first_line(exc))


def _redis_incr(storage, key: str, expiry: int) -> int:
    """INCR on the `limits` storage's own connection; the window's key gets its expiry on
    its first count only (one round trip per request instead of the storage's script, which
    sets the expiry every time: half the CPU)."""
    name = storage.prefixed_key(key)
    connection = storage.get_connection()
    count = int(connection.incr(name))
    if count == 1:
        connection.expire(name, expiry)
    return count


def _redis_key(subject: str, start: int) -> str:
    return f"loyalty/{subject}/{start}"


# -- counting -----------------------------------------------------------------------------

_exhausted: dict[tuple, int] = {}  # subject -> window start it was found over its limit in


def hit(subject: str, limit: int, period: int = 60, connection=None) -> Window:
    """Count one request of `subject`; the Window says whether it is within `limit`.
    `connection`: SQLite's driver connection of a write transaction the count joins (the
    gate's nonce transaction; the database is then the store, never Redis)."""
    now = time.time()
    start, reset = _window(period, now)
    url = current_settings().redis_url
    remembered = (url or id(database.obj), subject, limit)  # per store: tests switch databases
    if _exhausted.get(remembered) == start:
        return Window(limit, limit + 1, reset)
    count = None
    if url:
        try:
            count = _redis_incr(_redis_storage(url), _redis_key(subject, start), period + 5)
        except Exception as exc:  # Redis away: the database still counts for every process
            _warn_redis_away(exc)
    if count is None:
        count = _database_hit(subject, start, connection)
    if count > limit:
        if len(_exhausted) > 10_000:
            _exhausted.clear()
        _exhausted[remembered] = start
    return Window(limit, count, reset)


def peek(subject: str, limit: int, period: int = 60) -> Window:
    """The subject's standing without counting a request (for answers refused earlier)."""
    start, reset = _window(period, time.time())
    url = current_settings().redis_url
    count = None
    if url:
        try:
            count = int(_redis_storage(url).get(_redis_key(subject, start)))
        except Exception:
            count = None
    if count is None:
        count = _database_peek(subject, start)
    return Window(limit, count, reset)
