"""One-time codes that verify a member (DESIGN.md §3, §5, §6).

- codes are 6 digits from `secrets`, stored only as an HMAC under the server pepper and
  bound to the member; a member has at most one live code and a new one replaces it;
- a code lives 10 minutes and allows 5 tries; it is single-use;
- at most one code per 30 s and 5 per hour per member (OtpSend rows, so every server
  process counts the same sends); on top of that (DESIGN.md §13) at most
  LOYALTY_OTP_PER_APP_HOUR (200) per application and mode per hour, and 10 per destination
  (email address or phone number, stored as a keyed hash) per hour across all partners,
  counted for production codes only (test mode sends nothing) → 429 otp_rate_limited;
- test mode never delivers anything and the code is always `000000`;
- production delivers through a sender: SMTP (portal.mail, shared with invites and
  password resets) when LOYALTY_SMTP_URL is set, an HTTP
  webhook for SMS when LOYALTY_SMS_WEBHOOK is set, and otherwise the server console.
  The console sender *is* a delivery channel (for a first run, or an operator relaying
  codes by hand), so it prints the code on purpose; configure SMTP/SMS for real members.
  The code and its send are committed before delivery, which runs outside any
  transaction; when delivery fails both are deleted again (502 `otp_delivery_failed`), so
  no undelivered code stays live and the member may ask again at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import requests

from portal.config import current_settings
from portal.db import database, is_postgres, write_transaction
from portal.domain import Invalid, RateLimited, Unavailable
from portal.logs import get_logger
from portal.mail import send_smtp
from portal.models import Member, Otp, OtpSend, utcnow

log = get_logger("portal.domain.otp")

CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
COOLDOWN = timedelta(seconds=30)
HOURLY_LIMIT = 5
DESTINATION_HOURLY_LIMIT = 10
HOUR = timedelta(hours=1)
TEST_MODE_CODE = "000000"
CHANNELS = ("email", "sms")


# -- senders ------------------------------------------------------------------------------


class OtpSender(Protocol):
    def send(self, member: Member, channel: str, code: str) -> None:
        """Deliver `code` to the member over `channel`; raise on failure."""


def _message(code: str) -> str:
    return f"Your verification code is {code}. It expires in 10 minutes."


class ConsoleSender:
    """Writes the code to the server's log: the delivery channel of a fresh install."""

    def send(self, member: Member, channel: str, code: str) -> None:
        to = member.email if channel == "email" else member.phone
        log.info("OTP for %s by %s to %s: %s", member.public_id, channel, to, code)


class SmtpSender:
    """Email through the platform's mail module (portal.mail) at `url`."""

    def __init__(self, url: str, mail_from: str):
        self.url = url
        self.mail_from = mail_from

    def send(self, member: Member, channel: str, code: str) -> None:
        send_smtp(self.url, self.mail_from, member.email, "Your verification code", _message(code))


class WebhookSmsSender:
    """SMS through the operator's gateway: POST {"to", "message", "code"} as JSON."""

    def __init__(self, url: str):
        self.url = url

    def send(self, member: Member, channel: str, code: str) -> None:
        response = requests.post(self.url, json={"to": member.phone, "message": _message(code), "code": code},
                                 timeout=10)
        response.raise_for_status()


def sender_for(channel: str) -> OtpSender:
    """The configured sender of a channel (console when nothing is configured)."""
    settings = current_settings()
    if channel == "email" and settings.smtp_url:
        return SmtpSender(settings.smtp_url, settings.mail_from)
    if channel == "sms" and settings.sms_webhook:
        return WebhookSmsSender(settings.sms_webhook)
    return ConsoleSender()


# -- codes --------------------------------------------------------------------------------


def _hash_code(member: Member, code: str) -> str:
    """HMAC under the server pepper, bound to the member: a leaked table reveals nothing
    without the pepper, and one member's code cannot verify another."""
    message = f"{member.public_id}:{code}".encode()
    return hmac.new(current_settings().key_pepper, message, hashlib.sha256).hexdigest()


def _lock_member(member: Member) -> None:
    """Serialise OTP work per member: a row lock on PostgreSQL (SQLite's write
    transaction already holds the database's write lock)."""
    if is_postgres():
        Member.select(Member.id).where(Member.id == member.id).for_update().execute()


@dataclass(frozen=True)
class SentOtp:
    member_id: str
    channel: str
    expires_at: object
    delivered: bool  # False in test mode


def _destination_of(member: Member, channel: str) -> str:
    """The keyed hash a destination is counted under (no address is stored by it)."""
    to = member.email if channel == "email" else member.phone
    return hmac.new(current_settings().key_pepper, f"otp-destination:{channel}:{to}".encode(),
                    hashlib.sha256).hexdigest()


def _advisory_lock(name: str) -> None:
    """PostgreSQL: serialise counting under one cap until the transaction ends (SQLite's
    write transaction already serialises every writer)."""
    if is_postgres():
        key = int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def _refuse_over_cap(where, limit: int, now, message: str) -> None:
    """RateLimited (otp_rate_limited) when `limit` sends matching `where` fall in the last hour."""
    recent = list(OtpSend.select(OtpSend.created_at).where(where & (OtpSend.created_at > now - HOUR))
                  .order_by(OtpSend.created_at.desc()).limit(limit).tuples())
    if len(recent) >= limit:
        wait = int((recent[-1][0] + HOUR - now).total_seconds()) + 1
        raise RateLimited(message.format(limit=limit, wait=wait), code="otp_rate_limited", retry_after=wait)


def request_otp(member: Member, channel: str, sender: OtpSender | None = None, *,
                application_id: int | None = None) -> SentOtp:
    """Issue a new code for `member` (replacing any live one) and deliver it over `channel`.
    `application_id` (the calling key's application) is counted for the per-application cap."""
    if channel not in CHANNELS:
        raise Invalid("channel must be email or sms.", field="channel")
    if channel == "email" and not member.email:
        raise Invalid("This member has no email; use channel sms.", field="channel")
    if channel == "sms" and not member.phone:
        raise Invalid("This member has no phone; use channel email.", field="channel")
    if member.mode == "prod" and database.in_transaction():
        # Delivery waits up to 10 s on a mail server or SMS gateway: never with a
        # transaction open, which would hold SQLite's write lock (every API call writes
        # its nonce) or the member's row lock and a connection on PostgreSQL.
        raise RuntimeError("request_otp must not be called inside a transaction in production mode")
    code = TEST_MODE_CODE if member.mode == "test" else f"{secrets.randbelow(10**6):06d}"
    now = utcnow()
    with write_transaction():
        _lock_member(member)
        recent = list(
            OtpSend.select(OtpSend.created_at)
            .where((OtpSend.member == member) & (OtpSend.created_at > now - timedelta(hours=1)))
            .order_by(OtpSend.created_at.desc())
            .tuples()
        )
        if recent and recent[0][0] > now - COOLDOWN:
            wait = int((recent[0][0] + COOLDOWN - now).total_seconds()) + 1
            raise RateLimited(f"A code was sent less than 30 s ago; retry in {wait} s.", code="otp_cooldown",
                              retry_after=wait)
        if len(recent) >= HOURLY_LIMIT:
            wait = int((recent[-1][0] + timedelta(hours=1) - now).total_seconds()) + 1
            raise RateLimited(f"At most {HOURLY_LIMIT} codes an hour; retry in {wait} s.", code="otp_rate_limited",
                              retry_after=wait)
        destination = ""
        if application_id is not None:
            _advisory_lock(f"otp-app:{application_id}:{member.mode}")
            _refuse_over_cap((OtpSend.application_id == application_id) & (OtpSend.mode == member.mode),
                             current_settings().otp_per_app_hour, now,
                             "This application may send at most {limit} codes an hour in "
                             f"{'production' if member.mode == 'prod' else 'test'} mode; retry in {{wait}} s.")
        if member.mode == "prod":
            destination = _destination_of(member, channel)
            _advisory_lock(f"otp-destination:{destination}")
            _refuse_over_cap(OtpSend.destination == destination, DESTINATION_HOURLY_LIMIT, now,
                             f"This {'email address' if channel == 'email' else 'phone number'} was sent "
                             "{limit} codes in the last hour; retry in {wait} s.")
        send = OtpSend.create(member=member, created_at=now, application_id=application_id, mode=member.mode,
                              destination=destination)
        if secrets.randbelow(200) == 0:  # other members' old sends count for no cap any more
            OtpSend.delete().where(OtpSend.created_at < now - timedelta(hours=2)).execute()
        OtpSend.delete().where((OtpSend.member == member) & (OtpSend.created_at < now - timedelta(hours=2))).execute()
        Otp.delete().where(Otp.member == member).execute()
        otp = Otp.create(member=member, code_hash=_hash_code(member, code), channel=channel,
                         attempts=0, expires_at=now + CODE_LIFETIME, created_at=now)
    delivered = False
    if member.mode == "prod":
        try:
            (sender or sender_for(channel)).send(member, channel, code)
        except Exception as exc:  # delivery is outside our control
            log.error("OTP delivery by %s for %s failed: %s", channel, member.public_id, exc.__class__.__name__)
            # The member never got this code: it must not stay live, nor count as a send.
            with write_transaction():
                Otp.delete().where(Otp.id == otp.id).execute()
                OtpSend.delete().where(OtpSend.id == send.id).execute()
            raise Unavailable(f"The code could not be delivered by {channel}; retry shortly.",
                              code="otp_delivery_failed") from None
        delivered = True
    return SentOtp(member.public_id, channel, otp.expires_at, delivered)


def verify_otp(member: Member, code: str) -> Member:
    """Check `code` against the member's live code; on success the code is used up and the
    member marked verified. A wrong code uses up one of its 5 tries."""
    now = utcnow()
    outcome = None
    with write_transaction():
        _lock_member(member)
        otp = Otp.get_or_none(Otp.member == member)
        if otp is None:
            outcome = Invalid("No code is pending for this member; request one first.", code="otp_not_found", field="code")
        elif otp.expires_at <= now:
            Otp.delete().where(Otp.id == otp.id).execute()
            outcome = Invalid("The code has expired; request a new one.", code="otp_expired", field="code")
        elif otp.attempts >= MAX_ATTEMPTS:
            outcome = Invalid("Too many wrong tries; request a new code.", code="otp_attempts_exceeded", field="code")
        else:
            # Count the try first, in the same transaction, so parallel guesses cannot
            # exceed the limit.
            Otp.update(attempts=Otp.attempts + 1).where((Otp.id == otp.id) & (Otp.attempts < MAX_ATTEMPTS)).execute()
            if hmac.compare_digest(otp.code_hash, _hash_code(member, code)):
                Otp.delete().where(Otp.id == otp.id).execute()
                Member.update(verified_at=now, updated_at=now).where(Member.id == member.id).execute()
            else:
                left = MAX_ATTEMPTS - otp.attempts - 1
                outcome = Invalid(f"The code does not match; {left} {'try' if left == 1 else 'tries'} left."
                                  if left else "The code does not match; request a new code.",
                                  code="otp_incorrect", field="code")
    if outcome is not None:  # raised after the commit so the counted try is kept
        raise outcome
    return Member.get_by_id(member.id)


__all__ = [
    "CHANNELS", "ConsoleSender", "OtpSender", "SentOtp", "SmtpSender", "WebhookSmsSender",
    "request_otp", "sender_for", "verify_otp",
]
