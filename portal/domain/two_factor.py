"""Two-factor authentication: TOTP codes (RFC 6238) and recovery codes (DESIGN.md §10).

- The TOTP secret is stored encrypted, with the same key as App Secrets. "Set up" stores a
  new secret that counts for nothing until a code from it turns two-factor on.
- A code is accepted for the current 30-second step and one step either side (clocks on
  phones drift). Each accepted step is remembered on the user with a conditional update,
  so a code cannot be used twice, also by two server processes at once.
- Turning two-factor on makes ten recovery codes, shown once, stored as keyed hashes; each
  works once in place of a code. Turning it off needs a current code (or a recovery code)
  and removes the secret and the codes.
- The QR code is an SVG drawn on the server (segno), so no script draws it and the
  Content-Security-Policy stays strict.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import time

import pyotp
import segno
from markupsafe import Markup

from portal.config import current_settings
from portal.db import database, write_transaction
from portal.domain import Conflict, Invalid, audit, throttle
from portal.domain.applications import secret_box
from portal.logs import get_logger
from portal.models import RecoveryCode, User, utcnow

log = get_logger(__name__)

ISSUER = "Loyalty Partners"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper safely
_RECOVERY_HALF = 5
DRIFT_STEPS = 1
_TOTP_RE = re.compile(r"^\d{6}$")


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=6, interval=30)


def _secret_of(user: User) -> str | None:
    if not user.totp_secret:
        return None
    try:
        return secret_box().decrypt(user.totp_secret)
    except ValueError:
        # The encryption key that made it is gone: codes cannot be checked, recovery
        # codes (keyed by the pepper) still work. Said once per attempt, to the log.
        log.error("the two-factor secret of user %s cannot be decrypted with LOYALTY_ENCRYPTION_KEY", user.id)
        return None


# -- set-up -------------------------------------------------------------------------------


def start_setup(user: User) -> str:
    """A new TOTP secret for `user`, not in force until `turn_on`; returns it (base32)."""
    if user.has_two_factor:
        raise Conflict("Two-factor authentication is already on. Turn it off first to set up a new device.")
    secret = pyotp.random_base32()
    User.update(totp_secret=secret_box().encrypt(secret), totp_enabled_at=None, totp_last_step=None) \
        .where(User.id == user.id).execute()
    return secret


def pending_secret(user: User) -> str | None:
    """The secret being set up (two-factor not on yet), or None."""
    if user.has_two_factor:
        return None
    return _secret_of(user)


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> Markup:
    """The QR code of `uri` as inline SVG (no script, no external image)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
                                    svgclass="qr-code", title="QR code for your authenticator app", nl=False)
    svg = out.getvalue().decode("utf-8")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def turn_on(user: User, code: str) -> list[str]:
    """Check a code from the secret being set up; on success two-factor is on and ten
    recovery codes are made. Returns the codes' plaintext (shown once)."""
    secret = pending_secret(user)
    if secret is None:
        if user.has_two_factor:
            raise Conflict("Two-factor authentication is already on.")
        raise Invalid("Start with “Set up two-factor authentication”.", field="code")
    step = _matching_step(secret, code)
    if step is None:
        raise Invalid("That code does not match. Check the time on your phone and enter the newest code.",
                      field="code")
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    now = utcnow()
    with database.atomic():
        changed = (User.update(totp_enabled_at=now, totp_last_step=step)
                   .where((User.id == user.id) & User.totp_enabled_at.is_null()
                          & (User.totp_secret == user.totp_secret)).execute())
        if not changed:
            raise Conflict("Two-factor set-up changed in another window. Reload the page and start again.")
        _replace_recovery_codes(user, codes, now)
        audit.record("2fa.enabled", user=user, target=user.email)
    return codes


def turn_off(user: User, code: str) -> None:
    """Turn two-factor off after a current code (or an unused recovery code)."""
    if not user.has_two_factor:
        raise Conflict("Two-factor authentication is already off.")
    how = _throttled_check(user, code)
    if how is None:
        raise Invalid("That code does not match. Enter the newest code from your authenticator app.", field="code")
    with database.atomic():
        User.update(totp_secret=None, totp_enabled_at=None, totp_last_step=None).where(User.id == user.id).execute()
        RecoveryCode.delete().where(RecoveryCode.user == user).execute()
        audit.record("2fa.disabled", user=user, target=user.email, detail=f"confirmed with a {how}")


def cancel_setup(user: User) -> None:
    """Forget a secret being set up (two-factor stays off)."""
    User.update(totp_secret=None, totp_last_step=None) \
        .where((User.id == user.id) & User.totp_enabled_at.is_null()).execute()


# -- codes ----------------------------------------------------------------------------------


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code is `code` (the current one or one either side), or None."""
    code = re.sub(r"\s+", "", code or "")
    if not _TOTP_RE.match(code):
        return None
    totp = _totp(secret)
    current = totp.timecode(now if now is not None else time.time())
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # no early exit: every candidate is compared
    return found


def check_code(user: User, code: str, *, now: float | None = None) -> str | None:
    """Accept a TOTP code or a recovery code of `user`, each at most once.

    Returns "code" or "recovery code" for what was accepted, or None.
    """
    if not user.has_two_factor:
        return None
    secret = _secret_of(user)
    step = _matching_step(secret, code, now) if secret else None
    if step is not None:
        # Only a step after the last one accepted: a code seen once (on this or another
        # server process) is refused from then on.
        accepted = (User.update(totp_last_step=step)
                    .where((User.id == user.id)
                           & (User.totp_last_step.is_null() | (User.totp_last_step < step))).execute())
        return "code" if accepted else None
    if _use_recovery_code(user, code):
        return "recovery code"
    return None


def _throttled_check(user: User, code: str) -> str | None:
    """`check_code` counted against the user's two-factor throttle (a signed-in session
    cannot guess its way to turning two-factor off)."""
    attempts = throttle.reserve((throttle.TWO_FACTOR_USER, str(user.id)))
    how = check_code(user, code)
    if how is not None:
        throttle.forget(attempts)
    return how


def normalise_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]+", "", (code or "").lower())


def _recovery_hash(user: User, code: str) -> str:
    """Keyed hash under the server pepper, bound to the user (codes carry 50 bits of
    randomness; the pepper keeps a leaked table from being guessed offline)."""
    message = f"{user.id}:{normalise_recovery_code(code)}".encode()
    return hmac.new(current_settings().key_pepper, message, hashlib.sha256).hexdigest()


def _new_recovery_code() -> str:
    chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_HALF * 2))
    return f"{chars[:_RECOVERY_HALF]}-{chars[_RECOVERY_HALF:]}"


def _replace_recovery_codes(user: User, codes: list[str], now) -> None:
    RecoveryCode.delete().where(RecoveryCode.user == user).execute()
    RecoveryCode.insert_many([{"user": user.id, "code_hash": _recovery_hash(user, c), "created_at": now}
                              for c in codes]).execute()


def _use_recovery_code(user: User, code: str) -> bool:
    normal = normalise_recovery_code(code)
    if len(normal) != _RECOVERY_HALF * 2 or any(ch not in _RECOVERY_ALPHABET for ch in normal):
        return False
    used = (RecoveryCode.update(used_at=utcnow())
            .where((RecoveryCode.user == user) & (RecoveryCode.code_hash == _recovery_hash(user, normal))
                   & RecoveryCode.used_at.is_null()).execute())
    if used:
        audit.record("2fa.recovery_code_used", user=user, target=user.email,
                     detail=f"{recovery_codes_left(user)} left")
    return bool(used)


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.select().where((RecoveryCode.user == user) & RecoveryCode.used_at.is_null()).count()


def new_recovery_codes(user: User, code: str) -> list[str]:
    """Replace the recovery codes (after a current code); returns the new ones, shown once."""
    if not user.has_two_factor:
        raise Conflict("Turn on two-factor authentication first.")
    if _throttled_check(user, code) is None:
        raise Invalid("That code does not match. Enter the newest code from your authenticator app.", field="code")
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    with database.atomic():
        _replace_recovery_codes(user, codes, utcnow())
        audit.record("2fa.recovery_codes_replaced", user=user, target=user.email)
    return codes


def reencrypt_totp_secrets() -> int:
    """Re-encrypt every stored TOTP secret under the first LOYALTY_ENCRYPTION_KEY (with the
    App Secrets, when the server's encryption key is rotated); all or none. Returns how
    many were rewritten."""
    box = secret_box()
    count = 0
    with write_transaction():
        for row in User.select(User.id, User.totp_secret).where(User.totp_secret.is_null(False)).order_by(User.id):
            User.update(totp_secret=box.rotate(row.totp_secret)).where(User.id == row.id).execute()
            count += 1
        if count:
            audit.record("encryption_key.rotated", actor="cli", detail=f"{count} two-factor secrets re-encrypted")
    return count


def reset_two_factor(user: User, *, actor: str = "cli") -> bool:
    """Turn two-factor off for a user who lost their phone and their recovery codes (an
    operator does this after checking who is asking); their sessions end. Returns False
    when it was off already."""
    from portal.domain.sessions import end_all_sessions

    with write_transaction():
        changed = (User.update(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
                   .where((User.id == user.id) & User.totp_secret.is_null(False)).execute())
        RecoveryCode.delete().where(RecoveryCode.user == user).execute()
        if changed:
            end_all_sessions(user)
            audit.record("2fa.disabled", user=user, actor=actor, target=user.email, detail="by the operator")
    return bool(changed)
