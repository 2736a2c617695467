"""Partners, their users, applications, App Secrets, API keys and the audit trail."""

from __future__ import annotations

import peewee

from portal.models.base import BaseModel, utcnow


class Partner(BaseModel):
    """A partner organisation (a shop, brand or app) that integrates with the program."""

    name = peewee.CharField(max_length=120)
    # active | pending (LOYALTY_SIGNUP=approval, until an operator approves) | suspended
    # (by an operator). Only an active partner's keys are accepted (the gate, check 5).
    status = peewee.CharField(max_length=16, default="active")
    created_at = peewee.DateTimeField(default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"


class User(BaseModel):
    """A person who logs in to the portal: a partner's user, or an operator of the
    platform (role "operator", no partner: migration 006, DESIGN.md §14)."""

    partner = peewee.ForeignKeyField(Partner, backref="users", on_delete="CASCADE", null=True)
    email = peewee.CharField(max_length=254, unique=True)  # stored lower-cased
    password_hash = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=16, default="owner")  # owner | admin | developer | viewer | operator
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)
    # Two-factor authentication (TOTP): the secret encrypted like App Secrets; set up but
    # not yet confirmed while `totp_enabled_at` is empty. `totp_last_step` is the time step
    # of the last code accepted, so a code cannot be used twice.
    totp_secret = peewee.TextField(null=True)
    totp_enabled_at = peewee.DateTimeField(null=True)
    totp_last_step = peewee.BigIntegerField(null=True)
    password_changed_at = peewee.DateTimeField(null=True)

    # flask-login protocol
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return True

    def get_id(self) -> str:
        return str(self.id)

    @property
    def has_two_factor(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_operator(self) -> bool:
        """An operator runs the platform; they belong to no partner (portal.domain.operators)."""
        return self.role == "operator" and self.partner_id is None


class Invite(BaseModel):
    """An email allowed to sign up while LOYALTY_SIGNUP=invite."""

    email = peewee.CharField(max_length=254, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    used_at = peewee.DateTimeField(null=True)


class Application(BaseModel):
    """A partner's integration: one App ID, one current App Secret, many API keys."""

    partner = peewee.ForeignKeyField(Partner, backref="applications", on_delete="CASCADE")
    app_id = peewee.CharField(max_length=20, unique=True)
    name = peewee.CharField(max_length=80)
    status = peewee.CharField(max_length=16, default="active")  # active | disabled
    created_at = peewee.DateTimeField(default=utcnow)
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class AppSecret(BaseModel):
    """An App Secret, encrypted at rest. The current one has no `expires_at`; a
    regenerated-away one keeps working until its `expires_at` (the grace period)."""

    application = peewee.ForeignKeyField(Application, backref="secrets", on_delete="CASCADE")
    ciphertext = peewee.TextField()
    last4 = peewee.CharField(max_length=4)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(null=True, index=True)


class ApiKey(BaseModel):
    """A scoped API key of one application and one mode, stored only as a keyed hash."""

    application = peewee.ForeignKeyField(Application, backref="api_keys", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    mode = peewee.CharField(max_length=4)  # test | prod
    key_hash = peewee.CharField(max_length=64, unique=True)  # hex HMAC-SHA256(pepper, key)
    first4 = peewee.CharField(max_length=4)
    last4 = peewee.CharField(max_length=4)
    scopes = peewee.TextField()  # space-separated, sorted
    expires_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)
    rolled_from = peewee.ForeignKeyField("self", null=True, on_delete="SET NULL")
    # Guardrails (DESIGN.md §13, migration 005): allowed networks normalised one per line
    # (empty: anywhere), a lower per-key rate limit (None: the mode's default), where the
    # key was reported exposed, and when its expiry reminder went out.
    allowed_ips = peewee.TextField(default="")
    rate_limit = peewee.IntegerField(null=True)
    exposed_at = peewee.DateTimeField(null=True)
    exposed_source = peewee.TextField(null=True)
    expiry_reminded_at = peewee.DateTimeField(null=True)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def prefix(self) -> str:
        return f"{self.mode}_sk_"

    @property
    def masked(self) -> str:
        """`test_sk_abcd…wxyz`: enough to recognise a key, never enough to use it."""
        return f"{self.prefix}{self.first4}…{self.last4}"

    def is_live_at(self, now) -> bool:
        """Neither revoked nor expired at `now`: calls made with it are accepted."""
        return self.status_at(now) in ("active", "expiring")

    @property
    def allowed_ip_list(self) -> list[str]:
        return self.allowed_ips.split()

    def status_at(self, now) -> str:
        if self.revoked_at is not None and self.exposed_at is not None:
            return "exposed"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.expires_at is not None:
            return "expiring"
        return "active"


class AuditEvent(BaseModel):
    """Who did what, when and from where. Never holds a secret or a key."""

    partner = peewee.ForeignKeyField(Partner, null=True, backref="audit_events", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    actor = peewee.CharField(max_length=254)  # an email, "cli", or "anonymous"
    action = peewee.CharField(max_length=64, index=True)
    target = peewee.CharField(max_length=120, default="")
    detail = peewee.TextField(default="")
    ip = peewee.CharField(max_length=64, default="")
    created_at = peewee.DateTimeField(default=utcnow, index=True)
