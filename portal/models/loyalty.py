"""Members and their ledgers. Every row carries the partner and the mode of the key that
made it; a key only ever sees its own partner's rows of its own mode."""

from __future__ import annotations

import peewee

from portal.models.accounts import Partner
from portal.models.base import BaseModel, new_public_id, utcnow
from portal.models.program import Card, Reward


class Member(BaseModel):
    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("mem_"))
    partner = peewee.ForeignKeyField(Partner, backref="members", on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    external_id = peewee.CharField(max_length=128, null=True)
    name = peewee.CharField(max_length=120, default="")
    email = peewee.CharField(max_length=254, null=True)  # normalised, lower-case
    phone = peewee.CharField(max_length=16, null=True)  # E.164
    referral_code = peewee.CharField(max_length=16, unique=True)
    verified_at = peewee.DateTimeField(null=True)
    # The cashback balance lives on the member row: a debit is one conditional UPDATE.
    cashback_balance = peewee.BigIntegerField(default=0, constraints=[peewee.Check("cashback_balance >= 0")])
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("partner", "mode", "email"), True),
            (("partner", "mode", "phone"), True),
            (("partner", "mode", "external_id"), True),
        )


class StampBalance(BaseModel):
    """A member's stamps on one card; a debit is one conditional UPDATE of this row."""

    member = peewee.ForeignKeyField(Member, backref="stamp_balances", on_delete="CASCADE")
    card = peewee.ForeignKeyField(Card)  # no cascade: a card with balances cannot be deleted
    balance = peewee.BigIntegerField(default=0, constraints=[peewee.Check("balance >= 0")])

    class Meta:
        indexes = ((("member", "card"), True),)


class LedgerEntry(BaseModel):
    """An append-only stamps or cashback movement with the balance after it."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("txn_"))
    partner = peewee.ForeignKeyField(Partner, on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    member = peewee.ForeignKeyField(Member, backref="ledger", on_delete="CASCADE")
    kind = peewee.CharField(max_length=8)  # stamps | cashback
    card = peewee.ForeignKeyField(Card, null=True)  # no cascade: history keeps its card
    amount = peewee.BigIntegerField()  # signed: credits > 0, debits < 0
    balance_after = peewee.BigIntegerField()
    source = peewee.CharField(max_length=16)  # earn | redeem | claim | referral
    reference = peewee.CharField(max_length=128, null=True)
    description = peewee.CharField(max_length=240, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("member", "kind", "id"), False),)


class Redemption(BaseModel):
    """A reward bought with stamps."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("red_"))
    member = peewee.ForeignKeyField(Member, backref="redemptions", on_delete="CASCADE")
    reward = peewee.ForeignKeyField(Reward)  # no cascade: a redeemed reward stays
    entry = peewee.ForeignKeyField(LedgerEntry, on_delete="CASCADE")
    created_at = peewee.DateTimeField(default=utcnow)


class Claim(BaseModel):
    """A member's request for stamps or cashback, decided once by the partner."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("clm_"))
    partner = peewee.ForeignKeyField(Partner, on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    member = peewee.ForeignKeyField(Member, backref="claims", on_delete="CASCADE")
    kind = peewee.CharField(max_length=8)  # stamps | cashback
    card = peewee.ForeignKeyField(Card, null=True)  # no cascade: history keeps its card
    count = peewee.IntegerField(null=True)
    amount = peewee.BigIntegerField(null=True)
    reference = peewee.CharField(max_length=128, null=True)
    note = peewee.CharField(max_length=500, null=True)
    status = peewee.CharField(max_length=10, default="pending", index=True)  # pending | approved | rejected
    reason = peewee.CharField(max_length=500, null=True)
    entry = peewee.ForeignKeyField(LedgerEntry, null=True, on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)
    decided_at = peewee.DateTimeField(null=True)


class Referral(BaseModel):
    """`referrer` brought `referee`; a member is referred at most once (unique referee)."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("ref_"))
    partner = peewee.ForeignKeyField(Partner, on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    referrer = peewee.ForeignKeyField(Member, backref="referrals_made", on_delete="CASCADE")
    referee = peewee.ForeignKeyField(Member, unique=True, backref="referred_by", on_delete="CASCADE")
    rewarded = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)


class Otp(BaseModel):
    """The member's one live code (a new one replaces it), stored hashed."""

    member = peewee.ForeignKeyField(Member, unique=True, on_delete="CASCADE")
    code_hash = peewee.CharField(max_length=64)
    channel = peewee.CharField(max_length=8)  # email | sms
    attempts = peewee.IntegerField(default=0)
    expires_at = peewee.DateTimeField()
    created_at = peewee.DateTimeField(default=utcnow)


class OtpSend(BaseModel):
    """One row per code sent, for the 30 s cooldown and the hourly cap across processes."""

    member = peewee.ForeignKeyField(Member, on_delete="CASCADE")
    created_at = peewee.DateTimeField(default=utcnow)
    # The caps of DESIGN.md §13 (migration 005): per application and mode, and per
    # destination (a keyed hash of the email or phone; empty in test mode).
    application_id = peewee.IntegerField(null=True)
    mode = peewee.CharField(max_length=4, default="")
    destination = peewee.CharField(max_length=64, default="")

    class Meta:
        indexes = ((("member", "created_at"), False),
                   (("application_id", "mode", "created_at"), False),
                   (("destination", "created_at"), False))
