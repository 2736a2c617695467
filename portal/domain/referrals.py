"""Referrals: a member brings another with their referral code.

`apply_referral` is the one way a referral is recorded — the API and anything else call
it — so its rules hold everywhere:

- a member is referred at most once (and the `referee` column is unique, so even two
  concurrent applications cannot both succeed);
- never by themselves: not by their own code, and not by a member with the same email
  mailbox (`ann+2@x.com` is `ann@x.com`) or the same phone number;
- the program's referral reward (stamps on a card or a cashback amount, to the referrer
  and/or the referee) is credited in the same transaction as the referral row.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from portal.db import write_transaction
from portal.domain import Conflict, Invalid, ledger
from portal.models import Card, Member, Program, Referral

CODE_MAX = 64

# Why a code cannot be used, as `validate` reports it and the API's error codes.
UNKNOWN_CODE = "unknown_code"
SELF_REFERRAL = "self_referral"
ALREADY_REFERRED = "already_referred"

_MESSAGES = {
    UNKNOWN_CODE: "No member of this program has this referral code.",
    SELF_REFERRAL: "A member cannot be referred by themselves.",
    ALREADY_REFERRED: "This member has already been referred.",
}


def refused(reason: str):
    """The DomainError for a reason code: an unknown code is bad input (`code`), the
    others are the referee's state (`member_id`)."""
    if reason == UNKNOWN_CODE:
        return Invalid(_MESSAGES[reason], code=reason, field="code")
    return Conflict(_MESSAGES[reason], code=reason, field="member_id")


def normalise_code(code: str) -> str:
    """Referral codes are compared without surrounding spaces and case-insensitively."""
    return str(code or "").strip().upper()[:CODE_MAX]


def mailbox(email: str | None) -> str | None:
    """The mailbox an address delivers to: lower case, without a `+tag`, and without the
    dots Gmail ignores — so one person's address variants compare equal."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def is_same_person(a: Member, b: Member) -> bool:
    """True when two member records are one person: same id, same mailbox or same phone."""
    if a.id == b.id:
        return True
    if a.email and b.email and mailbox(a.email) == mailbox(b.email):
        return True
    return bool(a.phone and b.phone and a.phone == b.phone)


def find_referrer(partner, mode: str, code: str) -> Member | None:
    """The member of this partner and mode whose referral code this is, or None."""
    code = normalise_code(code)
    if not code:
        return None
    # Codes are issued in upper case (portal.domain.members), so this is the unique index's lookup.
    return Member.get_or_none(
        (Member.referral_code == code) & (Member.partner == partner) & (Member.mode == mode))


def _refusal(referrer: Member | None, referee: Member | None) -> str | None:
    if referrer is None:
        return UNKNOWN_CODE
    if referee is None:
        return None
    if is_same_person(referrer, referee):
        return SELF_REFERRAL
    if Referral.select().where(Referral.referee == referee).exists():
        return ALREADY_REFERRED
    return None


@dataclass(frozen=True)
class CodeCheck:
    """What validating a code found: its owner (if any) and why it cannot be used (None
    when it can)."""

    referrer: Member | None
    reason: str | None

    @property
    def valid(self) -> bool:
        return self.reason is None


def validate_code(partner, mode: str, code: str, member: Member | None = None) -> CodeCheck:
    """Whether `code` can refer `member` (or anyone, without a member)."""
    referrer = find_referrer(partner, mode, code)
    return CodeCheck(referrer, _refusal(referrer, member))


def apply_referral(referee: Member, code: str) -> Referral:
    """Record that the owner of `code` referred `referee`, and credit the program's reward.

    Raises a DomainError (writing nothing) for an unknown code, a self-referral or a
    member already referred (see `refused`). The returned referral carries `.entries`, the ledger entries
    its reward made.
    """
    try:
        with write_transaction():
            # Fresh rows inside the transaction: the caller's copy may predate an update.
            referee = Member.get_by_id(referee.id)
            referrer = find_referrer(referee.partner_id, referee.mode, code)
            reason = _refusal(referrer, referee)
            if reason is not None:
                raise refused(reason)
            referral = Referral.create(partner=referee.partner_id, mode=referee.mode, referrer=referrer,
                                       referee=referee)
            referral.entries = _credit_reward(referral, referrer, referee)
            if referral.entries:
                Referral.update(rewarded=True).where(Referral.id == referral.id).execute()
                referral.rewarded = True
    except peewee.IntegrityError:
        # Only the unique referee can collide: a concurrent application won the race.
        raise refused(ALREADY_REFERRED) from None
    referral.referrer, referral.referee = referrer, referee
    return referral


def _credit_reward(referral: Referral, referrer: Member, referee: Member) -> list:
    program = Program.get_or_none(Program.partner == referee.partner_id)
    if program is None:  # the partner never configured a program: no reward rule
        return []
    recipients = [m for m, wanted in ((referrer, program.reward_referrer), (referee, program.reward_referee)) if wanted]
    kind, amount = program.referral_reward_kind, program.referral_amount
    if kind == "none" or amount <= 0 or not recipients:
        return []
    if kind == "stamps" and program.referral_card_id is None:  # the card is gone: nothing to stamp
        return []
    entries = []
    for member in recipients:
        role = "referrer" if member.id == referrer.id else "referee"
        description = f"Referral {referral.public_id} ({role})"
        if kind == "stamps":
            card = Card.get_by_id(program.referral_card_id)
            entries.append(ledger._credit_stamps(member, card, amount, source="referral",
                                                 reference=referral.public_id, description=description))
        else:
            entries.append(ledger._credit_cashback(member, amount, source="referral",
                                                   reference=referral.public_id, description=description))
    return entries


REFERRALS_LISTED = 100


@dataclass(frozen=True)
class ReferralStats:
    member: Member
    referred_count: int
    rewarded_count: int
    referred_by: str | None  # the referrer's public id
    latest: list  # Referral rows, newest first, each with .referee loaded


def referral_stats(member: Member) -> ReferralStats:
    """The member's code, how many they referred and were rewarded for, who referred them,
    and their latest referrals (newest first, at most REFERRALS_LISTED)."""
    made = Referral.select().where(Referral.referrer == member)
    latest = list(
        Referral.select(Referral, Member)
        .join(Member, on=(Referral.referee == Member.id))
        .where(Referral.referrer == member)
        .order_by(Referral.id.desc())
        .limit(REFERRALS_LISTED)
    )
    referred_by = (
        Member.select(Member.public_id)
        .join(Referral, on=(Referral.referrer == Member.id))
        .where(Referral.referee == member)
        .scalar()
    )
    return ReferralStats(
        member=member,
        referred_count=made.count(),
        rewarded_count=made.where(Referral.rewarded == True).count(),  # noqa: E712 (SQL, not Python)
        referred_by=referred_by,
        latest=latest,
    )
