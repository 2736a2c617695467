"""The loyalty program a partner configures in the portal: shared by test and prod mode."""

from __future__ import annotations

import peewee

from portal.models.accounts import Partner
from portal.models.base import BaseModel, new_public_id, utcnow


class Card(BaseModel):
    """A stamp card; its rewards are bought with its stamps."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("card_"))
    partner = peewee.ForeignKeyField(Partner, backref="cards", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    description = peewee.CharField(max_length=240, default="")
    created_at = peewee.DateTimeField(default=utcnow)


class Reward(BaseModel):
    """Something a member gets for `stamps_cost` stamps of one card."""

    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: new_public_id("rwd_"))
    card = peewee.ForeignKeyField(Card, backref="rewards", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    stamps_cost = peewee.IntegerField(constraints=[peewee.Check("stamps_cost > 0")])
    created_at = peewee.DateTimeField(default=utcnow)


class Program(BaseModel):
    """One per partner: currency and the referral rule."""

    partner = peewee.ForeignKeyField(Partner, unique=True, backref="program_rows", on_delete="CASCADE")
    currency = peewee.CharField(max_length=3, default="EUR")  # ISO 4217
    # The reward for a referral: none, stamps on `referral_card`, or cashback minor units.
    referral_reward_kind = peewee.CharField(max_length=8, default="none")  # none | stamps | cashback
    referral_card = peewee.ForeignKeyField(Card, null=True, on_delete="SET NULL")
    referral_amount = peewee.IntegerField(default=0)
    reward_referrer = peewee.BooleanField(default=True)
    reward_referee = peewee.BooleanField(default=False)
    updated_at = peewee.DateTimeField(default=utcnow)
