"""The program a partner configures in the portal: its currency, stamp cards with their
rewards, and the referral rule. Shared by test and prod mode (DESIGN.md §3).

Cards and rewards that a ledger, a claim or a redemption already refers to cannot be
deleted: ledgers are append-only, and deleting the card would take its entries with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from portal.db import database, write_transaction
from portal.domain import Conflict, Invalid, audit
from portal.inputs import whole_number
from portal.models import Card, Claim, LedgerEntry, Program, Redemption, Reward, StampBalance, utcnow

CARD_NAME_MAX = 80
CARD_DESCRIPTION_MAX = 240
REWARD_NAME_MAX = 80
STAMPS_COST_MAX = 1000
REFERRAL_STAMPS_MAX = 1000
REFERRAL_CASHBACK_MAX = 1_000_000_00  # minor units; a referral bonus above a million is a typo
REFERRAL_REWARD_KINDS = ("none", "stamps", "cashback")

# Active ISO 4217 currencies a loyalty program can pay cashback in (funds codes, metals
# and the testing codes left out).
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
ZAR ZMW ZWG
""".split())

# Digits after the decimal point, where not 2 (ISO 4217 minor units), for display only.
_MINOR_UNIT_EXCEPTIONS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


def minor_unit_digits(currency: str) -> int:
    """How many decimals a currency's minor unit has (2 for EUR, 0 for JPY, 3 for KWD)."""
    return _MINOR_UNIT_EXCEPTIONS.get(currency, 2)


def format_money(amount: int, currency: str) -> str:
    """`1250, "EUR"` → `"12.50 EUR"`: minor units as a person reads them."""
    digits = minor_unit_digits(currency)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(int(amount)), 10**digits)
    text = f"{whole:,}" + (f".{part:0{digits}d}" if digits else "")
    return f"{sign}{text} {currency}"


# --- reading -----------------------------------------------------------------------------

def program_for(partner) -> Program:
    """The partner's program settings, created with the defaults on first use."""
    program = Program.get_or_none(Program.partner == partner)
    if program is not None:
        return program
    try:
        with database.atomic():
            return Program.create(partner=partner)
    except peewee.IntegrityError:  # another request created it first
        return Program.get(Program.partner == partner)


def currency_of(partner) -> str:
    """The program's currency, read without creating the program row (API reads stay reads)."""
    currency = Program.select(Program.currency).where(Program.partner == partner).scalar()
    return currency or Program.currency.default


def list_cards(partner) -> list[Card]:
    """The partner's cards, oldest first, each with `.reward_list` (cheapest first)."""
    cards = list(Card.select().where(Card.partner == partner).order_by(Card.id))
    rewards: dict[int, list[Reward]] = {card.id: [] for card in cards}
    if cards:
        query = Reward.select().where(Reward.card.in_(list(rewards))).order_by(Reward.stamps_cost, Reward.id)
        for reward in query:
            rewards[reward.card_id].append(reward)
    for card in cards:
        card.reward_list = rewards[card.id]
    return cards


_OWNED_CARD_SQL: dict[type, str] = {}


def owned_card(partner, public_id: str, *, rewards: bool = True) -> Card | None:
    """The partner's card with this public id (`card_…`), or None for anyone else's; with
    `.reward_list` (cheapest first) unless `rewards=False`."""
    # On every stamps write: rendered to SQL once per engine (parameters: public id, partner id).
    sql = _OWNED_CARD_SQL.get(type(database.obj))
    if sql is None:
        sql = _OWNED_CARD_SQL[type(database.obj)] = Card.select().where(
            (Card.public_id == "") & (Card.partner == 0)).sql()[0]
    row = database.execute_sql(sql, (str(public_id), getattr(partner, "id", partner))).fetchone()
    card = Card.from_row(row) if row is not None else None
    if card is not None and rewards:
        card.reward_list = list(card.rewards.order_by(Reward.stamps_cost, Reward.id))
    return card


def owned_reward(partner, public_id: str) -> Reward | None:
    """The partner's reward with this public id (`rwd_…`), its card joined, or None."""
    return (
        Reward.select(Reward, Card)
        .join(Card)
        .where((Reward.public_id == str(public_id)) & (Card.partner == partner))
        .first()
    )


# --- program settings --------------------------------------------------------------------

@dataclass
class ProgramSettings:
    """What the portal's program form submits, already parsed."""

    currency: str
    referral_reward_kind: str = "none"
    referral_card_id: str | None = None  # public id
    referral_amount: int = 0
    reward_referrer: bool = True
    reward_referee: bool = False


def update_program(partner, settings: ProgramSettings, *, by=None) -> Program:
    """Save the currency and referral rule after checking them.

    The currency can only change while no cashback has been credited: balances are minor
    units of it, and 100 JPY are not 1.00 EUR.
    """
    currency = (settings.currency or "").strip().upper()
    if currency not in CURRENCIES:
        raise Invalid("Choose a currency by its ISO 4217 code, like EUR or USD.", field="currency")
    kind = settings.referral_reward_kind
    if kind not in REFERRAL_REWARD_KINDS:
        raise Invalid("Choose no reward, stamps on a card, or a cashback amount.", field="referral_reward_kind")
    card = None
    amount = 0
    if kind != "none":
        amount = _positive_int(settings.referral_amount, "referral_amount",
                               REFERRAL_STAMPS_MAX if kind == "stamps" else REFERRAL_CASHBACK_MAX)
        if not (settings.reward_referrer or settings.reward_referee):
            raise Invalid("Reward the referrer, the new member, or both.", field="reward_referrer")
    if kind == "stamps":
        card = owned_card(partner, settings.referral_card_id or "")
        if card is None:
            raise Invalid("Choose the card the referral stamps go on.", field="referral_card")

    with write_transaction():
        program = program_for(partner)
        if currency != program.currency and _cashback_ever_credited(partner):
            raise Invalid(
                f"The currency stays {program.currency}: members already hold cashback in it.", field="currency")
        Program.update(
            currency=currency,
            referral_reward_kind=kind,
            referral_card=card,
            referral_amount=amount,
            reward_referrer=bool(settings.reward_referrer) if kind != "none" else program.reward_referrer,
            reward_referee=bool(settings.reward_referee) if kind != "none" else program.reward_referee,
            updated_at=utcnow(),
        ).where(Program.id == program.id).execute()
        audit.record("program.updated", partner=partner, user=by, actor=_actor(by),
                     detail=f"currency {currency}, referral {kind}")
    return Program.get_by_id(program.id)


def _cashback_ever_credited(partner) -> bool:
    return LedgerEntry.select().where(
        (LedgerEntry.partner == partner) & (LedgerEntry.kind == "cashback")).exists()


# --- cards ---------------------------------------------------------------------------------

def create_card(partner, name: str, description: str = "", *, by=None) -> Card:
    """Add a stamp card to the program."""
    name = _text(name, "name", CARD_NAME_MAX, required="Name the card, like “Coffee card”.")
    description = _text(description, "description", CARD_DESCRIPTION_MAX)
    with database.atomic():
        card = Card.create(partner=partner, name=name, description=description)
        audit.record("card.created", partner=partner, user=by, actor=_actor(by), target=card.public_id, detail=name)
    card.reward_list = []
    return card


def update_card(card: Card, name: str, description: str = "", *, by=None) -> Card:
    """Rename a card or change its description (its stamps and rewards stay)."""
    name = _text(name, "name", CARD_NAME_MAX, required="Name the card, like “Coffee card”.")
    description = _text(description, "description", CARD_DESCRIPTION_MAX)
    with database.atomic():
        Card.update(name=name, description=description).where(Card.id == card.id).execute()
        audit.record("card.updated", partner=card.partner_id, user=by, actor=_actor(by), target=card.public_id)
    card.name, card.description = name, description
    return card


def delete_card(card: Card, *, by=None) -> None:
    """Remove a card nobody has used yet, with its rewards.

    Refused once any member holds or held stamps on it, a claim names it, or it is the
    referral card: deleting it would erase ledger history.
    """
    with write_transaction():
        used = (
            StampBalance.select().where(StampBalance.card == card).exists()
            or LedgerEntry.select().where(LedgerEntry.card == card).exists()
            or Claim.select().where(Claim.card == card).exists()
        )
        if used:
            raise Conflict("This card has stamps, history or claims, so it stays.", code="card_in_use", field="card")
        if Program.select().where((Program.partner == card.partner_id) & (Program.referral_card == card)).exists():
            raise Conflict("This card receives referral stamps; change the referral reward first.", code="card_in_use", field="card")
        try:
            with database.atomic():
                Card.delete().where(Card.id == card.id).execute()
        except peewee.IntegrityError:
            # A stamp landed between the check and the delete (PostgreSQL does not
            # serialise them): the foreign keys refuse to orphan it.
            raise Conflict("This card has stamps, history or claims, so it stays.", code="card_in_use", field="card") from None
        audit.record("card.deleted", partner=card.partner_id, user=by, actor=_actor(by), target=card.public_id,
                     detail=card.name)


# --- rewards -------------------------------------------------------------------------------

def create_reward(card: Card, name: str, stamps_cost, *, by=None) -> Reward:
    """Add a reward a member buys with `stamps_cost` stamps of `card`."""
    name = _text(name, "reward_name", REWARD_NAME_MAX, required="Name the reward, like “Free coffee”.")
    cost = _positive_int(stamps_cost, "stamps_cost", STAMPS_COST_MAX)
    with database.atomic():
        reward = Reward.create(card=card, name=name, stamps_cost=cost)
        audit.record("reward.created", partner=card.partner_id, user=by, actor=_actor(by), target=reward.public_id,
                     detail=f"{name} for {cost} stamps on {card.public_id}")
    return reward


def update_reward(reward: Reward, name: str, stamps_cost, *, by=None) -> Reward:
    """Rename a reward or change its price in stamps (past redemptions keep what they paid)."""
    name = _text(name, "reward_name", REWARD_NAME_MAX, required="Name the reward, like “Free coffee”.")
    cost = _positive_int(stamps_cost, "stamps_cost", STAMPS_COST_MAX)
    with database.atomic():
        Reward.update(name=name, stamps_cost=cost).where(Reward.id == reward.id).execute()
        audit.record("reward.updated", partner=reward.card.partner_id, user=by, actor=_actor(by),
                     target=reward.public_id, detail=f"{name} for {cost} stamps")
    reward.name, reward.stamps_cost = name, cost
    return reward


def delete_reward(reward: Reward, *, by=None) -> None:
    """Remove a reward that was never redeemed (a redeemed one stays, for the record)."""
    with write_transaction():
        if Redemption.select().where(Redemption.reward == reward).exists():
            raise Conflict("Members have redeemed this reward, so it stays; you can rename it.", code="reward_in_use", field="reward")
        try:
            with database.atomic():
                Reward.delete().where(Reward.id == reward.id).execute()
        except peewee.IntegrityError:  # redeemed between the check and the delete
            raise Conflict("Members have redeemed this reward, so it stays; you can rename it.", code="reward_in_use", field="reward") from None
        audit.record("reward.deleted", partner=reward.card.partner_id, user=by, actor=_actor(by),
                     target=reward.public_id, detail=reward.name)


# --- parsing -----------------------------------------------------------------------------

def _text(value, field: str, max_length: int, *, required: str | None = None) -> str:
    value = " ".join(str(value or "").split())
    if required and not value:
        raise Invalid(required, field=field)
    if len(value) > max_length:
        raise Invalid(f"Use at most {max_length} characters.", field=field)
    return value


def _positive_int(value, field: str, maximum: int) -> int:
    """An int, or the text of a whole number as a person types it (ASCII digits only: not
    `1e3`, `1_000`, `٣` or `0x10`, which int() would take), from 1 to `maximum`."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = whole_number(value) if isinstance(value, str) else None
        if number is None:
            raise Invalid("Enter a whole number, like 10.", field=field)
    if not 1 <= number <= maximum:
        raise Invalid(f"Enter a whole number from 1 to {maximum:,}.", field=field)
    return number


def _actor(user) -> str | None:
    return None if user is not None else "cli"
