"""Teams and account security: invitations to a partner's team, server-side log-in
sessions, two-factor recovery codes, password resets, and the attempts that throttle
log-ins. Every token (invite, reset, session id) is stored only as its SHA-256."""

from __future__ import annotations

import peewee

from portal.models.accounts import Partner, User
from portal.models.base import BaseModel, utcnow


class TeamInvite(BaseModel):
    """A single-use link that lets `email` join `partner` with `role` until `expires_at`.

    (Not `Invite`, which is the operator's sign-up allow-list for LOYALTY_SIGNUP=invite.)
    """

    partner = peewee.ForeignKeyField(Partner, backref="team_invites", on_delete="CASCADE")
    email = peewee.CharField(max_length=254)
    role = peewee.CharField(max_length=16)
    token_hash = peewee.CharField(max_length=64, unique=True)
    invited_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)


class UserSession(BaseModel):
    """A signed-in browser. The cookie carries the session id; a session without its row
    (logged out, ended everywhere, idle too long, user removed) is refused."""

    user = peewee.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_seen_at = peewee.DateTimeField(default=utcnow)
    ip = peewee.CharField(max_length=64, default="")
    user_agent = peewee.CharField(max_length=200, default="")


class RecoveryCode(BaseModel):
    """One of a user's ten single-use two-factor recovery codes, stored as a keyed hash."""

    user = peewee.ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "code_hash"), True),)


class PasswordReset(BaseModel):
    """A single-use password reset link, valid until `expires_at`."""

    user = peewee.ForeignKeyField(User, backref="password_resets", on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)


class Attempt(BaseModel):
    """One counted attempt (a failed log-in, a reset request …) of `kind` by `subject` (a
    keyed hash of an email, a user or an address), so every server process counts alike."""

    kind = peewee.CharField(max_length=24)
    subject = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "subject", "created_at"), False),)
