"""Partner accounts: sign-up, log-in, passwords.

Passwords go through passlib's CryptContext with argon2 first; a hash made under an older
policy (or under the test suites' cheap parameters) is replaced on the next successful
log-in.
"""

from __future__ import annotations

import re
from functools import lru_cache

import peewee
from passlib.context import CryptContext

from portal.config import current_settings
from portal.db import database
from portal.domain import Conflict, Invalid, audit
from portal.inputs import unstorable
from portal.models import Invite, Partner, User, utcnow

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256
BUSINESS_NAME_MAX = 120
EMAIL_MAX = 254
# No spaces and no control characters (an address with ESC or DEL in it is no address).
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f-\x9f]"
_EMAIL_RE = re.compile(rf"^{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+$")



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
    fields = {"last_login_at": utcnow()}
    if new_hash:
        fields["password_hash"] = new_hash
    User.update(**fields).where(User.id == user.id).execute()
    return user


def invite_email(email: str) -> Invite:
    """Allow `email` to sign up while LOYALTY_SIGNUP=invite."""
    email = normalise_email(email)
    invite, _ = Invite.get_or_create(email=email)
    audit.record("invite.created", actor="cli", target=email)
    return invite
