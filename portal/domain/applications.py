"""Applications and their credentials: App IDs, App Secrets and API keys (DESIGN.md §1).

Every function here owns its transaction and its audit record; views and CLI commands
call these and nothing below them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import peewee

from portal.config import current_settings
from portal.credentials import (
    SecretBox,
    generate_api_key,
    generate_app_id,
    generate_app_secret,
    hash_api_key,
)
from portal.db import database, lock_for_update, write_transaction
from portal.domain import Conflict, Invalid, audit
from portal.inputs import row_id
from portal.models import MODES, ApiKey, Application, AppSecret, isoformat, utcnow
from portal.scopes import normalise_scopes

NAME_MAX = 80

# Choices offered in the portal and accepted by the CLI; values are lifetimes.
KEY_EXPIRY_CHOICES: dict[str, timedelta | None] = {
    "never": None,
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "1y": timedelta(days=365),
}
KEY_EXPIRY_LABELS = {"never": "Never", "30d": "30 days", "90d": "90 days", "1y": "1 year"}

# How long an old key (on roll) or an old App Secret (on regeneration) keeps working.
GRACE_CHOICES: dict[str, timedelta] = {
    "now": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
GRACE_LABELS = {"now": "Now", "1h": "1 hour", "24h": "24 hours", "7d": "7 days"}
DEFAULT_SECRET_GRACE = "24h"


def secret_box() -> SecretBox:
    """The encryptor for App Secrets under the configured encryption keys."""
    return _secret_box(current_settings().encryption_keys)


@lru_cache(maxsize=4)
def _secret_box(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)


def _clean_name(name: str, what: str, field: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise Invalid(f"Enter a {what}.", field=field)
    if len(name) > NAME_MAX:
        raise Invalid(f"Use at most {NAME_MAX} characters for the {what}.", field=field)
    return name


# -- applications and App Secrets ---------------------------------------------------------


def create_application(partner, name: str, *, by=None) -> tuple[Application, str]:
    """Create an application with a fresh App ID and App Secret; returns the secret's
    plaintext, which is shown once and never again."""
    name = _clean_name(name, "application name", "name")
    secret = generate_app_secret()
    with database.atomic():
        app = Application.create(partner=partner, app_id=generate_app_id(), name=name, created_by=by)
        AppSecret.create(application=app, ciphertext=secret_box().encrypt(secret), last4=secret[-4:])
        audit.record("application.created", partner=partner, user=by, target=app.app_id, detail=name)
    return app, secret


def regenerate_secret(app: Application, *, grace: str = DEFAULT_SECRET_GRACE, by=None) -> str:
    """Replace the App Secret; the previous one stays valid for `grace` (a GRACE_CHOICES key).
    Returns the new plaintext, shown once."""
    if grace not in GRACE_CHOICES:
        raise Invalid("Choose how long the previous secret keeps working.", field="grace")
    secret = generate_app_secret()
    with write_transaction():
        # Two regenerations at once must not both see "the current secret" and leave two
        # current ones: the application's row lock (PostgreSQL) or the database's write
        # lock (SQLite) puts them one after the other.
        lock_for_update(Application.select(Application.id).where(Application.id == app.id)).execute()
        now = utcnow()
        # Only the current secret gets a grace period; older grace periods end now at the
        # latest, so at most two secrets are ever valid.
        AppSecret.update(expires_at=now).where(
            (AppSecret.application == app) & AppSecret.expires_at.is_null(False) & (AppSecret.expires_at > now)
        ).execute()
        AppSecret.update(expires_at=now + GRACE_CHOICES[grace]).where(
            (AppSecret.application == app) & AppSecret.expires_at.is_null()
        ).execute()
        AppSecret.create(application=app, ciphertext=secret_box().encrypt(secret), last4=secret[-4:])
        audit.record("secret.regenerated", partner=app.partner_id, user=by, target=app.app_id,
                     detail=f"previous secret valid for {GRACE_LABELS[grace]}")
    return secret


@dataclass(frozen=True)
class SecretState:
    current_last4: str
    previous_last4: str | None
    previous_expires_at: datetime | None


def secret_state(app: Application) -> SecretState:
    """What the application page says about the secret: its last 4, and any grace period."""
    now = utcnow()
    rows = list(
        AppSecret.select()
        .where((AppSecret.application == app) & (AppSecret.expires_at.is_null() | (AppSecret.expires_at > now)))
        .order_by(AppSecret.id.desc())
    )
    current = next((r for r in rows if r.expires_at is None), None)
    previous = next((r for r in rows if r.expires_at is not None), None)
    return SecretState(
        current_last4=current.last4 if current else "????",
        previous_last4=previous.last4 if previous else None,
        previous_expires_at=previous.expires_at if previous else None,
    )


def reencrypt_app_secrets() -> int:
    """Re-encrypt every stored App Secret under the first LOYALTY_ENCRYPTION_KEY (the step
    of rotating the server's encryption key after the new key was put first). Returns how
    many were rewritten; all or none, in one transaction."""
    box = secret_box()
    count = 0
    with write_transaction():
        for row in AppSecret.select(AppSecret.id, AppSecret.ciphertext).order_by(AppSecret.id):
            AppSecret.update(ciphertext=box.rotate(row.ciphertext)).where(AppSecret.id == row.id).execute()
            count += 1
        audit.record("encryption_key.rotated", actor="cli", detail=f"{count} App Secrets re-encrypted")
    return count


def owned_application(partner, app_id: str) -> Application | None:
    """The partner's application with this App ID, or None (callers answer 404)."""
    return Application.get_or_none((Application.app_id == app_id) & (Application.partner == partner))


def applications_of(partner) -> list[Application]:
    """The partner's applications, newest first."""
    return list(Application.select().where(Application.partner == partner).order_by(Application.id.desc()))


def keys_of_partner(partner) -> list[ApiKey]:
    """Every API key of every application of the partner, newest first."""
    return list(ApiKey.select().join(Application).where(Application.partner == partner).order_by(ApiKey.id.desc()))


def keys_of(app: Application) -> list[ApiKey]:
    """The application's API keys, newest first."""
    return list(ApiKey.select().where(ApiKey.application == app).order_by(ApiKey.id.desc()))


def live_key_counts(partner, now=None) -> dict[int, int]:
    """Application id -> how many of its keys work now (neither revoked nor expired)."""
    now = now or utcnow()
    counts: dict[int, int] = {}
    for key in keys_of_partner(partner):
        if key.is_live_at(now):
            counts[key.application_id] = counts.get(key.application_id, 0) + 1
    return counts


# -- API keys -----------------------------------------------------------------------------


def issue_api_key(
    app: Application, *, name: str, mode: str, scopes, expires_in: timedelta | None = None,
    by=None, rolled_from: ApiKey | None = None, allowed_ips: str = "", rate_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext (shown once, stored only hashed).
    `allowed_ips` and `rate_limit` come checked from portal.domain.guardrails."""
    name = _clean_name(name, "key name", "name")
    if mode not in MODES:
        raise Invalid("Choose Test or Production.", field="mode")
    try:
        scopes = normalise_scopes(scopes)
    except ValueError as exc:
        raise Invalid(str(exc).capitalize() + ".", field="scopes") from None
    if expires_in is not None and expires_in <= timedelta(0):
        raise Invalid("The expiry must be in the future.", field="expires")
    pepper = current_settings().key_pepper
    now = utcnow()
    with database.atomic():
        for _ in range(3):  # a hash collision is astronomically unlikely; retry anyway
            plaintext = generate_api_key(mode)
            try:
                with database.atomic():
                    key = ApiKey.create(
                        application=app, name=name, mode=mode,
                        key_hash=hash_api_key(plaintext, pepper),
                        first4=plaintext[8:12], last4=plaintext[-4:],
                        scopes=" ".join(scopes),
                        expires_at=(now + expires_in) if expires_in is not None else None,
                        created_at=now, created_by=by, rolled_from=rolled_from,
                        allowed_ips=allowed_ips, rate_limit=rate_limit,
                    )
                break
            except peewee.IntegrityError:
                continue
        else:  # pragma: no cover
            raise RuntimeError("could not generate a unique API key")
        audit.record("key.rolled" if rolled_from else "key.created", partner=app.partner_id, user=by,
                     target=key.masked, detail=f"{mode} {name}: {' '.join(scopes)}")
    return key, plaintext


def roll_api_key(key: ApiKey, *, old_expires: str, by=None) -> tuple[ApiKey, str]:
    """Replace `key` with a new one of the same name, mode and scopes; the old key expires
    after `old_expires` (a GRACE_CHOICES key). Returns the new key and its plaintext."""
    if old_expires not in GRACE_CHOICES:
        raise Invalid("Choose when the old key expires.", field="old_expires")
    if key.revoked_at is not None:
        raise Conflict("A revoked key cannot be rolled; create a new key instead.", code="key_not_rollable", field="key")
    now = utcnow()
    if key.expires_at is not None and key.expires_at <= now:
        raise Conflict("An expired key cannot be rolled; create a new key instead.", code="key_not_rollable", field="key")
    old_until = now + GRACE_CHOICES[old_expires]
    with write_transaction():
        # A double-submitted roll must not leave a second replacement whose plaintext
        # nobody saw: the key's row lock orders the two, and the second finds the first's.
        lock_for_update(ApiKey.select(ApiKey.id).where(ApiKey.id == key.id)).execute()
        if ApiKey.select().where(ApiKey.rolled_from == key.id).exists():
            raise Conflict("This key was already rolled: roll or revoke its replacement instead.", code="key_not_rollable", field="key")
        new_expires_in = (key.expires_at - key.created_at) if key.expires_at else None
        new_key, plaintext = issue_api_key(
            key.application, name=key.name, mode=key.mode, scopes=key.scope_list,
            expires_in=new_expires_in, by=by, rolled_from=key,
            allowed_ips=key.allowed_ips, rate_limit=key.rate_limit,  # the replacement keeps the guardrails
        )
        # Never extend an expiry that was already sooner than the one chosen.
        ApiKey.update(expires_at=old_until).where(
            (ApiKey.id == key.id) & (ApiKey.expires_at.is_null() | (ApiKey.expires_at > old_until))
        ).execute()
    return new_key, plaintext


def revoke_api_key(key: ApiKey, *, by=None) -> bool:
    """Revoke a key at once. Returns False (and changes nothing) if it was already revoked."""
    with database.atomic():
        changed = ApiKey.update(revoked_at=utcnow()).where(
            (ApiKey.id == key.id) & ApiKey.revoked_at.is_null()
        ).execute()
        if changed:
            audit.record("key.revoked", partner=key.application.partner_id, user=by, target=key.masked,
                         detail=f"{key.mode} {key.name}")
    return bool(changed)


def owned_api_key(partner, app: Application, key_id) -> ApiKey | None:
    """A key of `app` that belongs to `partner`, or None (callers answer 404)."""
    key_id = row_id(key_id)
    if key_id is None:
        return None
    return (
        ApiKey.select().join(Application)
        .where((ApiKey.id == key_id) & (ApiKey.application == app) & (Application.partner == partner))
        .first()
    )


# -- what webhook events say of keys and secrets (never a key or a secret itself) ------------


def api_key_json(key, app_id: str) -> dict:
    """An API key's metadata, as webhook events carry it (never the key itself)."""
    return {
        "object": "api_key",
        "id": key.masked,
        "app_id": app_id,
        "mode": key.mode,
        "name": key.name,
        "scopes": key.scope_list,
        "created_at": isoformat(key.created_at),
        "expires_at": isoformat(key.expires_at),
        "revoked_at": isoformat(key.revoked_at),
        "replaces": key.rolled_from.masked if key.rolled_from_id else None,
    }


def app_secret_json(app_id: str, state) -> dict:
    """An App Secret's metadata after a change (`state`: a `SecretState`)."""
    return {
        "object": "app_secret",
        "app_id": app_id,
        "last4": state.current_last4,
        "previous_last4": state.previous_last4,
        "previous_valid_until": isoformat(state.previous_expires_at),
    }
