"""Throttling of log-ins, the two-factor step, reset requests and sign-ups (DESIGN.md §10).

Attempts are rows in the database (portal.models.Attempt), so every server process and
every instance sharing the database counts the same ones. A limit is `count` attempts of a
kind by one subject within `window`; the subject is stored only as a keyed hash (no typed
email or address is kept by this table).

Counting is check-then-count under a lock: for each subject the attempts in the window
are counted and, when under the limit, one more is inserted, in one short write
transaction that holds a lock for that (kind, subject) — a transaction-scoped advisory
lock on PostgreSQL, the database's write lock on SQLite (BEGIN IMMEDIATE). So exactly
`count` attempts get through a burst, across every process. An attempt refused by the
limit is not counted (it does not push the window further out); one that succeeded may be
taken back by the caller (`forget`), so only failures count where the rule says "failed
log-ins".
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta

from portal.config import current_settings
from portal.db import database, is_postgres, write_transaction
from portal.domain import RateLimited
from portal.models import Attempt, utcnow

WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    kind: str
    count: int
    window: timedelta
    message: str  # "{wait}" becomes e.g. "15 minutes"


# DESIGN.md §10: 5 failed log-ins per email, 30 per address, within 15 minutes; the same
# for the two-factor step (per user), password-reset requests and sign-ups.
LOGIN_EMAIL = Limit("login_email", 5, WINDOW,
                    "Too many failed log-ins for this email. Try again in {wait}.")
LOGIN_ADDRESS = Limit("login_address", 30, WINDOW,
                      "Too many failed log-ins from your network. Try again in {wait}.")
TWO_FACTOR_USER = Limit("2fa_user", 5, WINDOW,
                        "Too many wrong authentication codes. Try again in {wait}.")
TWO_FACTOR_ADDRESS = Limit("2fa_address", 30, WINDOW,
                           "Too many wrong authentication codes from your network. Try again in {wait}.")
RESET_EMAIL = Limit("reset_email", 5, WINDOW,
                    "Too many reset links asked for this email. Try again in {wait}.")
RESET_ADDRESS = Limit("reset_address", 30, WINDOW,
                      "Too many reset links asked from your network. Try again in {wait}.")
SIGNUP_ADDRESS = Limit("signup_address", 30, WINDOW,
                       "Too many sign-ups from your network. Try again in {wait}.")

ALL_LIMITS = (LOGIN_EMAIL, LOGIN_ADDRESS, TWO_FACTOR_USER, TWO_FACTOR_ADDRESS, RESET_EMAIL, RESET_ADDRESS,
              SIGNUP_ADDRESS)
KEEP = timedelta(days=1)  # rows older than this are swept


def subject_of(value: str) -> str:
    """The stored form of a subject: HMAC-SHA256 under the server pepper."""
    return hmac.new(current_settings().key_pepper, (value or "").encode("utf-8"), hashlib.sha256).hexdigest()


def wait_text(seconds: int) -> str:
    """`15 minutes`, `1 minute`, `40 seconds`: how long to wait, as a person says it."""
    if seconds < 60:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def _recent(limit: Limit, subject: str, now):
    """The attempts of `subject` under `limit` still inside its window (newest first)."""
    return (Attempt.select(Attempt.created_at)
            .where((Attempt.kind == limit.kind) & (Attempt.subject == subject)
                   & (Attempt.created_at > now - limit.window))
            .order_by(Attempt.created_at.desc()))


def retry_after(limit: Limit, value: str) -> int | None:
    """Seconds until `value` may try again under `limit`, or None when it may now."""
    now = utcnow()
    subject = subject_of(value)
    times = list(_recent(limit, subject, now).limit(limit.count).tuples())
    if len(times) < limit.count:
        return None
    # The limit-th newest attempt has to leave the window before another is allowed.
    oldest = times[-1][0]
    return max(1, math.ceil((oldest + limit.window - now).total_seconds()))


def check(*pairs: tuple[Limit, str]) -> None:
    """Refuse (RateLimited) when any (limit, value) is already at its limit; counts nothing."""
    for limit, value in pairs:
        wait = retry_after(limit, value)
        if wait is not None:
            raise RateLimited(limit.message.format(wait=wait_text(wait)), code="too_many_attempts",
                              retry_after=wait)


def reserve(*pairs: tuple[Limit, str]) -> list[int]:
    """Count one attempt for each (limit, value), or refuse with RateLimited and count none.

    Returns the ids of the attempts counted, for `forget` when the attempt succeeded.
    """
    now = utcnow()
    ids: list[int] = []
    with write_transaction():
        for limit, value in pairs:
            subject = subject_of(value)
            _lock(limit.kind, subject)
            if _recent(limit, subject, now).count() >= limit.count:
                wait = retry_after(limit, value) or 1
                # Raising rolls back the attempts this call already inserted for other limits.
                raise RateLimited(limit.message.format(wait=wait_text(wait)), code="too_many_attempts",
                                  retry_after=wait)
            ids.append(Attempt.create(kind=limit.kind, subject=subject, created_at=now).id)
    if secrets.randbelow(100) == 0:
        sweep()
    return ids


def _lock(kind: str, subject: str) -> None:
    """Serialise counting for one (kind, subject) until the transaction ends (PostgreSQL;
    SQLite's write transaction already serialises every writer)."""
    if is_postgres():
        key = int(hashlib.sha256(f"{kind}:{subject}".encode()).hexdigest()[:15], 16)
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def forget(ids: list[int]) -> None:
    """Take back attempts counted by `reserve` (the attempt succeeded, or was refused)."""
    if ids:
        Attempt.delete().where(Attempt.id.in_(ids)).execute()


def clear(limit: Limit, value: str) -> None:
    """Forget every attempt of `value` under `limit` (a successful log-in clears that
    email's failures)."""
    Attempt.delete().where((Attempt.kind == limit.kind) & (Attempt.subject == subject_of(value))).execute()


def sweep() -> int:
    """Delete attempts too old to count for any limit."""
    return Attempt.delete().where(Attempt.created_at < utcnow() - KEEP).execute()
