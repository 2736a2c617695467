"""Server-side portal sessions (DESIGN.md §10).

The signed session cookie carries a random session id; the database keeps only its
SHA-256 with the user, when it started and when it was last used. A request is signed in
only while that row exists: "Log out" deletes it (a copy of the old cookie is refused from
then on), a password change, a reset and "Log out everywhere" delete all of a user's rows,
removing a user deletes theirs, and a session unused for LOYALTY_SESSION_IDLE_HOURS is
over. `last_seen_at` is written at most once a minute per session, so a busy page does not
write on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from portal.config import current_settings
from portal.models import Partner, User, UserSession, utcnow

TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """The stored form of a session id (or any other random token)."""
    return hashlib.sha256((token or "").encode("utf-8")).hexdigest()


def idle_limit() -> timedelta:
    return timedelta(hours=current_settings().session_idle_hours)


def start_session(user: User, *, ip: str = "", user_agent: str = "") -> str:
    """A new session for `user`; returns its id (for the cookie, never stored as is)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    UserSession.create(user=user, token_hash=token_hash(token), created_at=now, last_seen_at=now,
                       ip=(ip or "")[:64], user_agent=(user_agent or "")[:200])
    # Sessions of this user that ran idle are of no use to anyone: tidy them on log-in.
    UserSession.delete().where((UserSession.user == user) & (UserSession.last_seen_at < now - idle_limit())).execute()
    return token


def user_for_session(token: str | None, user_id) -> User | None:
    """The user of a live session `token` whose id is `user_id`, or None (unknown, ended,
    idle too long, or someone else's). Notes the use at most once a minute."""
    if not token or not isinstance(token, str):
        return None
    digest = token_hash(token)
    # The partner too: every portal request checks it is not suspended (portal.web.permissions).
    row = (UserSession.select(UserSession, User, Partner).join(User).join(Partner)
           .where(UserSession.token_hash == digest).first())
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if str(row.user_id) != str(user_id):
        return None
    now = utcnow()
    if row.last_seen_at < now - idle_limit():
        UserSession.delete().where(UserSession.id == row.id).execute()
        return None
    if row.last_seen_at < now - TOUCH_EVERY:
        UserSession.update(last_seen_at=now).where(
            (UserSession.id == row.id) & (UserSession.last_seen_at < now - TOUCH_EVERY)).execute()
    return row.user


def end_session(token: str | None) -> None:
    """End one session (log out)."""
    if token and isinstance(token, str):
        UserSession.delete().where(UserSession.token_hash == token_hash(token)).execute()


def end_all_sessions(user: User) -> int:
    """End every session of `user`; returns how many there were."""
    return UserSession.delete().where(UserSession.user == user).execute()


def live_session_count(user: User) -> int:
    """How many browsers are signed in as `user` right now."""
    return (UserSession.select()
            .where((UserSession.user == user) & (UserSession.last_seen_at >= utcnow() - idle_limit()))
            .count())
