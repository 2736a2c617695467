"""Partner accounts: sign-up, log-in (with its throttle and the two-factor step),
passwords, forgotten-password resets.

Passwords go through passlib's CryptContext with argon2 first; a hash made under an older
policy (or under the test suites' cheap parameters) is replaced on the next successful
log-in. A password change or reset ends every session of the user
(portal.domain.sessions). A reset link is random, stored only as its SHA-256, lasts one
hour and works once; asking for one answers the same whether or not the email has an
account (and as fast: the email is sent from a thread of its own).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache

import peewee
from passlib.context import CryptContext

from portal.config import current_settings
from portal.db import database, write_transaction
from portal.domain import Conflict, Invalid, NotFound, audit, throttle
from portal.domain.sessions import end_all_sessions, token_hash
from portal.inputs import unstorable
from portal.mail import send_mail_in_background
from portal.models import Invite, Partner, PasswordReset, User, utcnow

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256
BUSINESS_NAME_MAX = 120
EMAIL_MAX = 254
# No spaces and no control characters (an address with ESC or DEL in it is no address).
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f-\x9f]"
_EMAIL_RE = re.compile(rf"^{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+$")
RESET_LIFETIME = timedelta(hours=1)
WRONG_LOGIN = "Email or password is incorrect."
SUSPENDED = ("This partner account is suspended: its team cannot log in or change anything, and its API "
             "keys are refused. Contact the platform's operator to have it reactivated.")


def is_suspended(user: User) -> bool:
    """The suspension rule (DESIGN.md §14): a partner whose status is not "active" (an
    operator suspended or disabled it) has no portal and no API; its users are refused."""
    return not user.partner.is_active


def refuse_if_suspended(user: User) -> None:
    """Invalid (code account_suspended) when the user's partner is suspended; audited."""
    if is_suspended(user):
        audit.record("login.refused", user=user, target=user.email, detail="partner suspended")
        raise Invalid(SUSPENDED, field="email", code="account_suspended")


@lru_cache(maxsize=None)
def _context(hashing: str) -> tuple[CryptContext, str]:
    """The password context for a LOYALTY_PASSWORD_HASHING profile, and a hash to verify
    against when the email is unknown (so both paths take as long).

    `argon2` is argon2's recommended cost; `fast` (for test suites only) is argon2 at its
    minimum cost, so thousands of sign-ups take milliseconds.
    """
    if hashing == "fast":
        context = CryptContext(schemes=["argon2"], deprecated="auto",
                               argon2__rounds=1, argon2__memory_cost=8, argon2__parallelism=1)
    else:
        context = CryptContext(schemes=["argon2", "bcrypt_sha256"], deprecated="auto")
    return context, context.hash("not a real password, only for timing")


def passwords() -> CryptContext:
    """The password hashing policy of the running configuration."""
    return _context(current_settings().password_hashing)[0]


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not email:
        raise Invalid("Enter your email address.", field="email")
    if len(email) > EMAIL_MAX or not _EMAIL_RE.match(email):
        raise Invalid("Enter a valid email address, like name@example.com.", field="email")
    return email


def check_password_policy(password: str) -> None:
    reason = unstorable(password or "")
    if reason is not None:
        # It would not even hash: a lone surrogate has no UTF-8 (stdin in another encoding).
        raise Invalid(f"The password holds {reason}; use ordinary text.", field="password")
    if len(password or "") < PASSWORD_MIN_LENGTH:
        raise Invalid(f"Use at least {PASSWORD_MIN_LENGTH} characters for your password.", field="password")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid(f"Use at most {PASSWORD_MAX_LENGTH} characters for your password.", field="password")


def create_partner_account(business_name: str, email: str, password: str, *, via: str = "signup") -> User:
    """Create a partner organisation and its first user, the owner.

    Raises Invalid for a bad field or Conflict for an email that already has an account.
    """
    business_name = " ".join((business_name or "").split())
    if not business_name:
        raise Invalid("Enter your business name.", field="business_name")
    if len(business_name) > BUSINESS_NAME_MAX:
        raise Invalid(f"Use at most {BUSINESS_NAME_MAX} characters for the business name.", field="business_name")
    email = normalise_email(email)
    check_password_policy(password)
    settings = current_settings()
    invite = None
    if settings.signup == "invite" and via == "signup":
        invite = Invite.get_or_none((Invite.email == email) & (Invite.used_at.is_null()))
        if invite is None:
            raise Invalid("Sign-up is by invitation on this platform; ask the operator to invite this email.", field="email")
    password_hash = passwords().hash(password)
    try:
        with database.atomic():
            partner = Partner.create(name=business_name)
            user = User.create(partner=partner, email=email, password_hash=password_hash, role="owner")
            if invite is not None:
                Invite.update(used_at=utcnow()).where(Invite.id == invite.id).execute()
            audit.record("account.signup" if via == "signup" else "account.created", user=user, detail=f"via {via}")
    except peewee.IntegrityError:
        raise Conflict("An account with this email already exists. Log in instead.", code="account_exists",
                       field="email") from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user whose password matches, or None (and an audit record of the failure)."""
    try:
        email = normalise_email(email)
    except Invalid:
        email = (email or "").strip().lower()[:EMAIL_MAX]
        user = None
    else:
        user = User.get_or_none(User.email == email)
    context, dummy_hash = _context(current_settings().password_hashing)
    if user is None:
        context.verify(password or "", dummy_hash)
        audit.record("login.failed", actor=email or "anonymous", detail="unknown email")
        return None
    ok, new_hash = context.verify_and_update(password or "", user.password_hash)
    if not ok:
        audit.record("login.failed", user=user, detail="wrong password")
        return None
    if new_hash:
        User.update(password_hash=new_hash).where(User.id == user.id).execute()
    return user


def invite_email(email: str) -> Invite:
    """Allow `email` to sign up while LOYALTY_SIGNUP=invite."""
    email = normalise_email(email)
    invite, _ = Invite.get_or_create(email=email)
    audit.record("invite.created", actor="cli", target=email)
    return invite


# -- log-in with its throttle -------------------------------------------------------------


def log_in(email: str, password: str, *, address: str) -> User:
    """The user whose email and password these are, counted against the log-in throttle
    (5 failures per email and 30 per address within 15 minutes, DESIGN.md §10).

    Raises RateLimited while over a limit (before the password is even checked) and
    Invalid for a wrong email or password. The caller still asks for the second factor
    when the user has one (`User.has_two_factor`).
    """
    key = (email or "").strip().lower()[:EMAIL_MAX]
    attempts = throttle.reserve((throttle.LOGIN_EMAIL, key), (throttle.LOGIN_ADDRESS, address))
    user = authenticate(email, password)
    if user is None:
        raise Invalid(WRONG_LOGIN, field="password", code="wrong_login")
    throttle.forget(attempts)
    throttle.clear(throttle.LOGIN_EMAIL, key)
    refuse_if_suspended(user)  # only after the right password: a stranger learns nothing
    return user


def second_factor(user_id, code: str, *, address: str) -> tuple[User, str]:
    """Check the two-factor code (or a recovery code) of the user who just gave their
    password, counted against the two-factor throttle. Returns the user and what was
    accepted ("code" or "recovery code"); Invalid for a wrong or reused code."""
    from portal.domain import two_factor

    user = User.get_or_none(User.id == user_id)
    if user is None or not user.has_two_factor:
        raise NotFound("Log in again.", code="login_expired")
    attempts = throttle.reserve((throttle.TWO_FACTOR_USER, str(user.id)), (throttle.TWO_FACTOR_ADDRESS, address))
    how = two_factor.check_code(user, code)
    if how is None:
        audit.record("2fa.failed", user=user, target=user.email)
        raise Invalid("That code does not match, or it was used already. Enter the newest code from your "
                      "authenticator app, or one of your recovery codes.", field="code", code="wrong_code")
    throttle.forget(attempts)
    throttle.clear(throttle.TWO_FACTOR_USER, str(user.id))
    refuse_if_suspended(user)  # suspended between the password and the code
    return user, how


def record_login(user: User, *, how: str = "password") -> None:
    """A completed log-in (after the second factor, when there is one): its time on the
    user and its audit entry."""
    User.update(last_login_at=utcnow()).where(User.id == user.id).execute()
    audit.record("login.succeeded", user=user, target=user.email, detail=f"with {how}")


def change_password(user: User, current: str, new: str, *, address: str) -> None:
    """Replace the password after checking the current one (throttled like a log-in); every
    session of the user ends (the caller starts a fresh one for this browser)."""
    key = user.email
    attempts = throttle.reserve((throttle.LOGIN_EMAIL, key), (throttle.LOGIN_ADDRESS, address))
    context, _ = _context(current_settings().password_hashing)
    stored = User.get_by_id(user.id)
    if not context.verify(current or "", stored.password_hash):
        audit.record("password.change_failed", user=user, target=user.email, detail="wrong current password")
        raise Invalid("Your current password is not correct.", field="current_password")
    throttle.forget(attempts)
    try:
        check_password_policy(new)
    except Invalid as exc:
        raise Invalid(exc.message, field="new_password") from None
    now = utcnow()
    with write_transaction():
        User.update(password_hash=context.hash(new), password_changed_at=now).where(User.id == user.id).execute()
        ended = end_all_sessions(user)
        audit.record("password.changed", user=user, target=user.email, detail=f"{ended} session(s) ended")


def log_out_everywhere(user: User) -> int:
    """End every session of `user` (this browser's too); returns how many ended."""
    with database.atomic():
        ended = end_all_sessions(user)
        audit.record("sessions.ended", user=user, target=user.email, detail=f"{ended} session(s) ended")
    return ended


# -- forgotten password ---------------------------------------------------------------------


def request_password_reset(email: str, *, address: str, link_for: Callable[[str], str]) -> None:
    """Email a reset link (1 hour, single-use) when `email` has an account; do nothing
    visible otherwise. `link_for(token)` makes the link's absolute URL.

    Raises Invalid for a malformed email and RateLimited over the reset throttle (5 per
    email, 30 per address within 15 minutes) — the same for known and unknown emails.
    """
    email = normalise_email(email)
    throttle.reserve((throttle.RESET_EMAIL, email), (throttle.RESET_ADDRESS, address))
    user = User.get_or_none(User.email == email)
    if user is None:
        return
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        # Only the newest link works: asking again retires the ones before it.
        PasswordReset.delete().where((PasswordReset.user == user) & PasswordReset.used_at.is_null()).execute()
        PasswordReset.create(user=user, token_hash=token_hash(token), created_at=now, expires_at=now + RESET_LIFETIME)
        # Anyone who knows the email can ask: the entry names nobody as the one who acted.
        audit.record("password.reset_requested", partner=user.partner_id, actor="anonymous", target=user.email)
    send_mail_in_background(user.email, "Reset your Loyalty Partners password", (
        "Someone (we hope you) asked to reset the password of your Loyalty Partners account.\n\n"
        f"Set a new password here (the link works once, for one hour):\n{link_for(token)}\n\n"
        "If it was not you, ignore this email: your password stays as it is."
    ))


def reset_for_token(token: str) -> PasswordReset:
    """The live reset of a link's token; NotFound/Conflict with a sentence saying why not."""
    digest = token_hash(token)
    reset = (PasswordReset.select(PasswordReset, User).join(User)
             .where(PasswordReset.token_hash == digest).first()) if token else None
    if reset is None or not hmac.compare_digest(reset.token_hash, digest):
        raise NotFound("This reset link is not valid. Check that you copied all of it, or ask for a new one.",
                       code="reset_invalid")
    if reset.used_at is not None:
        raise Conflict("This reset link has been used already. Ask for a new one if you need it.",
                       code="reset_used")
    if reset.expires_at <= utcnow():
        raise Conflict("This reset link has expired (links last one hour). Ask for a new one.", code="reset_expired")
    return reset


def reset_password(token: str, new_password: str) -> User:
    """Set a new password through a reset link; the link is used up and every session of
    the user ends. Two-factor authentication, when on, is still asked at the next log-in."""
    reset = reset_for_token(token)
    try:
        check_password_policy(new_password)
    except Invalid as exc:
        raise Invalid(exc.message, field="new_password") from None
    password_hash = passwords().hash(new_password)
    now = utcnow()
    with write_transaction():
        used = (PasswordReset.update(used_at=now)
                .where((PasswordReset.id == reset.id) & PasswordReset.used_at.is_null()
                       & (PasswordReset.expires_at > now)).execute())
        if not used:
            raise Conflict("This reset link has been used already. Ask for a new one if you need it.",
                           code="reset_used")
        User.update(password_hash=password_hash, password_changed_at=now).where(User.id == reset.user_id).execute()
        ended = end_all_sessions(reset.user)
        audit.record("password.reset", user=reset.user, target=reset.user.email, detail=f"{ended} session(s) ended")
    return User.get_by_id(reset.user_id)
