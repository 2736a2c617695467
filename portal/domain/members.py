"""Members: the loyalty program's customers, per partner and per mode.

Rules: emails are trimmed and lower-cased; phones are stored in E.164 (`+` and 7-15
digits); email, phone and external_id are each unique per (partner, mode); every member
has a unique referral code. Every lookup here is scoped by partner and mode, so another
partner's member or the other mode's member simply does not exist (the API answers 404).
"""

from __future__ import annotations

import re
import secrets

import peewee

from portal.db import database, write_transaction
from portal.domain import Conflict, Invalid
from portal.models import Member, utcnow

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud safely
REFERRAL_LENGTH = 8
EMAIL_MAX = 254
NAME_MAX = 120
EXTERNAL_ID_MAX = 128

# No spaces and no control characters (an address with ESC or DEL in it is no address).
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f-\x9f]"
_EMAIL_RE = re.compile(rf"^{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+$")
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")


def member_exists(field: str) -> Conflict:
    """Another member of the same partner and mode already has this email/phone/external_id."""
    return Conflict(f"Another member already has this {field.replace('_', ' ')}.", code="member_exists", field=field)


def normalise_email(raw: str) -> str:
    """`  Ana@Example.COM ` → `ana@example.com`; Invalid when it is not an email."""
    email = (raw or "").strip().lower()
    if not email or len(email) > EMAIL_MAX or not _EMAIL_RE.match(email):
        raise Invalid("email must be an email address such as ana@example.com.", field="email")
    return email


def normalise_phone(raw: str) -> str:
    """A phone number in international form → E.164 (`+44 20 7946-0958` → `+442079460958`).

    Strict on purpose: the country code must be given (`+` or `00` prefix), because
    guessing a country would silently merge or split members.
    """
    text = _PHONE_SEPARATORS.sub("", (raw or "").strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        raise Invalid("phone must include the country code, e.g. +44 20 7946 0958.", field="phone")
    digits = text[1:]
    if not digits.isascii() or not digits.isdigit() or not 7 <= len(digits) <= 15 or digits[0] == "0":
        raise Invalid("phone must be + and 7-15 digits (E.164), e.g. +442079460958.", field="phone")
    return "+" + digits


def _clean_name(raw) -> str:
    name = " ".join((raw or "").split())
    if len(name) > NAME_MAX:
        raise Invalid(f"name must be at most {NAME_MAX} characters.", field="name")
    return name


def _clean_external_id(raw) -> str | None:
    if raw is None:
        return None
    external_id = raw.strip()
    if not external_id:
        raise Invalid("external_id must not be blank (send null to clear it).", field="external_id")
    if len(external_id) > EXTERNAL_ID_MAX:
        raise Invalid(f"external_id must be at most {EXTERNAL_ID_MAX} characters.", field="external_id")
    return external_id


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_LENGTH))


_FIND_SQL: dict[type, str] = {}


def find_member_sql() -> str:
    """`find_member`'s statement (parameters: public id, partner id, mode). Nearly every API
    call starts there, so it is rendered to SQL once per database engine (building a peewee
    query costs more than running it on SQLite)."""
    sql = _FIND_SQL.get(type(database.obj))
    if sql is None:
        sql = _FIND_SQL[type(database.obj)] = Member.select().where(
            (Member.public_id == "") & (Member.partner == 0) & (Member.mode == "")
        ).sql()[0]
    return sql


def find_member(partner_id: int, mode: str, public_id: str) -> Member | None:
    """The partner's member of this mode with this id, or None (the API answers 404)."""
    row = database.execute_sql(find_member_sql(), (public_id, partner_id, mode)).fetchone()
    if row is None:
        return None
    return Member.from_row(row)


def members_of(partner_id: int, mode: str):
    """A select of the partner's members in one mode (for lists and filters)."""
    return Member.select().where((Member.partner == partner_id) & (Member.mode == mode))


def find_by_contact(partner_id: int, mode: str, *, email=None, phone=None, external_id=None) -> Member | None:
    """The member with this (normalised) email, phone or external id, if any."""
    select = members_of(partner_id, mode)
    if email is not None:
        return select.where(Member.email == normalise_email(email)).first()
    if phone is not None:
        return select.where(Member.phone == normalise_phone(phone)).first()
    if external_id is not None:
        return select.where(Member.external_id == external_id).first()
    return None


def _check_unique(partner_id: int, mode: str, values: dict, exclude_id: int | None = None) -> None:
    for field in ("email", "phone", "external_id"):
        value = values.get(field)
        if value is None:
            continue
        query = members_of(partner_id, mode).where(getattr(Member, field) == value)
        if exclude_id is not None:
            query = query.where(Member.id != exclude_id)
        if query.exists():
            raise member_exists(field)


def _clean(fields: dict) -> dict:
    """Normalise whichever of name, email, phone, external_id are present."""
    cleaned = {}
    if "name" in fields:
        cleaned["name"] = _clean_name(fields["name"])
    if "email" in fields:
        cleaned["email"] = normalise_email(fields["email"]) if fields["email"] is not None else None
    if "phone" in fields:
        cleaned["phone"] = normalise_phone(fields["phone"]) if fields["phone"] is not None else None
    if "external_id" in fields:
        cleaned["external_id"] = _clean_external_id(fields["external_id"])
    return cleaned


def create_member(partner_id: int, mode: str, fields: dict) -> Member:
    """Create a member from `name`, `email`, `phone`, `external_id` (at least one of email
    and phone) with a fresh unique referral code."""
    values = _clean(fields)
    if not values.get("email") and not values.get("phone"):
        raise Invalid("Give at least one of email and phone.", field="email")
    for _ in range(5):
        try:
            with write_transaction():
                _check_unique(partner_id, mode, values)
                now = utcnow()
                return Member.create(partner=partner_id, mode=mode, referral_code=new_referral_code(),
                                     created_at=now, updated_at=now, **values)
        except peewee.IntegrityError:
            # Either a concurrent insert took the email/phone/external id (the check above
            # now names it) or the referral code collided (try another).
            _check_unique(partner_id, mode, values)
    raise Conflict("Could not allocate a referral code; retry.", field="referral_code")


def update_member(member: Member, fields: dict) -> Member:
    """Change any of `name`, `email`, `phone`, `external_id`; null clears the optional ones,
    but a member keeps at least one of email and phone."""
    values = _clean(fields)
    email = values.get("email", member.email) if "email" in values else member.email
    phone = values.get("phone", member.phone) if "phone" in values else member.phone
    if not email and not phone:
        raise Invalid("A member keeps at least one of email and phone.", field="email" if "email" in values else "phone")
    if not values:
        return member
    values["updated_at"] = utcnow()
    try:
        with write_transaction():
            _check_unique(member.partner_id, member.mode, values, exclude_id=member.id)
            Member.update(**values).where(Member.id == member.id).execute()
    except peewee.IntegrityError:
        _check_unique(member.partner_id, member.mode, values, exclude_id=member.id)
        raise
    return Member.get_by_id(member.id)
