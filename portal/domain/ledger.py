"""Stamps and cashback: append-only ledger entries, each with the balance after it.

Every movement is one relative UPDATE of the balance row, `RETURNING` the new balance, and
the ledger entry for it, in one write transaction:

- a credit: `SET balance = balance + n` (for stamps an upsert: the row is created with n
  when the member has none on that card yet);
- a debit: `SET balance = balance - n WHERE … AND balance >= n` — when no row matches, the
  balance was too low and nothing was written. The check and the write are one statement,
  so two concurrent debits can never both spend the same stamps or money: on SQLite the
  write transaction holds the database lock (`BEGIN IMMEDIATE`), on PostgreSQL the UPDATE
  locks the row until commit and the second debit re-checks the condition against the
  committed value. The CHECK (balance >= 0) constraints are the last line of defence.

The balance never comes from a read followed by a write of an absolute value, so several
server processes on one PostgreSQL database stay exact.

Functions named `credit_…`/`debit_…` without a leading underscore own their transaction;
the underscored ones run inside the caller's (claims and referrals add their own rows to
the same transaction).
"""

from __future__ import annotations

import peewee

from portal.db import database, write_transaction
from portal.domain import Conflict, Invalid, NotFound
from portal.models import Card, LedgerEntry, Member, Redemption, Reward, StampBalance
from portal.models.base import new_public_id, utcnow

STAMPS_PER_CALL_MAX = 1000
CASHBACK_AMOUNT_MAX = 100_000_000_00  # minor units per movement; keeps sums far from int64
REFERENCE_MAX = 128
DESCRIPTION_MAX = 240
SOURCES = ("earn", "redeem", "claim", "referral")


# --- stamps ----------------------------------------------------------------------------------

def add_stamps(member: Member, card: Card, count: int, *, reference: str | None = None,
               description: str | None = None, source: str = "earn") -> LedgerEntry:
    """Credit `count` stamps on `card`; returns the ledger entry (with `balance_after`)."""
    check_stamp_count(count)
    check_same_partner(member, card)
    with write_transaction():
        return _credit_stamps(member, card, count, source=source, reference=reference, description=description)


def redeem_reward(member: Member, reward: Reward, *, reference: str | None = None) -> Redemption:
    """Spend the reward's `stamps_cost` stamps of its card, exactly once.

    Raises Conflict `insufficient_stamps` (and writes nothing) when the member has too few.
    """
    card = reward.card
    check_same_partner(member, card)
    with write_transaction():
        entry = _debit_stamps(member, card, reward.stamps_cost, source="redeem", reference=reference,
                              description=f"Redeemed {reward.name}"[:DESCRIPTION_MAX])
        redemption = Redemption.create(member=member, reward=reward, entry=entry)
    redemption.entry = entry
    redemption.reward = reward
    return redemption


_BALANCES_SQL: dict[type, str] = {}


def stamp_balances_sql() -> str:
    """`stamp_balances`' statement (parameters: the COALESCE default 0, member id, partner
    id), rendered to SQL once per engine: on this hot read, building the peewee query cost
    ~8x running it."""
    sql = _BALANCES_SQL.get(type(database.obj))
    if sql is None:
        sql = _BALANCES_SQL[type(database.obj)] = (
            Card.select(Card.public_id, Card.name, peewee.fn.COALESCE(StampBalance.balance, 0).alias("balance"))
            .join(StampBalance, peewee.JOIN.LEFT_OUTER,
                  on=((StampBalance.card == Card.id) & (StampBalance.member == 0)))
            .where(Card.partner == 0)
            .order_by(Card.id)
        ).sql()[0]
    return sql


def stamp_balances(member: Member) -> list[dict]:
    """The member's balance on every card of the program (0 where they never had a stamp),
    oldest card first, in one query."""
    rows = database.execute_sql(stamp_balances_sql(), (0, member.id, member.partner_id)).fetchall()
    return [{"card_id": card_id, "card_name": name, "balance": balance} for card_id, name, balance in rows]


_CREDIT_SQL: dict[type, str] = {}


def _credit_stamps(member, card, count: int, *, source: str, reference=None, description=None) -> LedgerEntry:
    # One statement: the balance row is created with `count`, or (it exists) credited
    # relatively, and the new balance returned. Rendered once per engine (parameters:
    # member id, card id, count, count).
    sql = _CREDIT_SQL.get(type(database.obj))
    if sql is None:
        sql = _CREDIT_SQL[type(database.obj)] = (
            StampBalance.insert(member=0, card=0, balance=0)
            .on_conflict(conflict_target=(StampBalance.member, StampBalance.card),
                         update={StampBalance.balance: StampBalance.balance + 0})
            .returning(StampBalance.balance)
        ).sql()[0]
    balance = database.execute_sql(sql, (member.id, card.id, count, count)).fetchone()[0]
    return _entry(member, "stamps", count, balance, card=card, source=source, reference=reference,
                  description=description)


def _debit_stamps(member, card, count: int, *, source: str, reference=None, description=None) -> LedgerEntry:
    rows = list(
        StampBalance.update(balance=StampBalance.balance - count)
        .where((StampBalance.member == member) & (StampBalance.card == card) & (StampBalance.balance >= count))
        .returning(StampBalance.balance)
        .tuples()
        .execute()
    )
    if not rows:
        raise Conflict(f"The member has fewer than {count} stamps on this card.", code="insufficient_stamps",
                       field="reward_id")
    return _entry(member, "stamps", -count, rows[0][0], card=card, source=source, reference=reference,
                  description=description)


# --- cashback --------------------------------------------------------------------------------

def credit_cashback(member: Member, amount: int, *, reference: str | None = None,
                    description: str | None = None, source: str = "earn") -> LedgerEntry:
    """Credit `amount` minor units of the program's currency; returns the ledger entry."""
    check_cashback_amount(amount)
    with write_transaction():
        return _credit_cashback(member, amount, source=source, reference=reference, description=description)


def redeem_cashback(member: Member, amount: int, *, reference: str | None = None,
                    description: str | None = None) -> LedgerEntry:
    """Debit `amount` minor units; raises Conflict `insufficient_balance` (writing nothing)
    when the balance is short."""
    check_cashback_amount(amount)
    with write_transaction():
        rows = list(
            Member.update(cashback_balance=Member.cashback_balance - amount)
            .where((Member.id == member.id) & (Member.cashback_balance >= amount))
            .returning(Member.cashback_balance)
            .tuples()
            .execute()
        )
        if not rows:
            raise Conflict(f"The member's cashback balance is below {amount}.", code="insufficient_balance",
                           field="amount")
        return _entry(member, "cashback", -amount, rows[0][0], source="redeem", reference=reference,
                      description=description)


def cashback_balance(member: Member) -> int:
    """The member's current cashback balance, in minor units."""
    return Member.select(Member.cashback_balance).where(Member.id == member.id).scalar() or 0


def _credit_cashback(member, amount: int, *, source: str, reference=None, description=None) -> LedgerEntry:
    rows = list(
        Member.update(cashback_balance=Member.cashback_balance + amount)
        .where(Member.id == member.id)
        .returning(Member.cashback_balance)
        .tuples()
        .execute()
    )
    if not rows:  # the member row vanished (deleted with its partner) mid-request
        raise peewee.DoesNotExist("member")
    return _entry(member, "cashback", amount, rows[0][0], source=source, reference=reference,
                  description=description)


# --- entries ---------------------------------------------------------------------------------

def _entry(member, kind: str, amount: int, balance_after: int, *, source: str, card=None,
           reference=None, description=None) -> LedgerEntry:
    assert source in SOURCES, source
    values = {
        "public_id": new_public_id("txn_"), "partner": member.partner_id, "mode": member.mode,
        "member": member.id, "kind": kind, "card": card.id if card is not None else None,
        "amount": amount, "balance_after": balance_after, "source": source,
        "reference": reference or None, "description": description or None, "created_at": utcnow(),
    }
    # Every ledger write inserts one: the INSERT is written once per engine (building it
    # with peewee cost more than running it).
    sql = _ENTRY_SQL.get(type(database.obj))
    if sql is None:
        sql = _ENTRY_SQL[type(database.obj)] = _insert_returning_id_sql(LedgerEntry, list(values))
    fields = LedgerEntry._meta.fields
    params = [fields[name].db_value(value) for name, value in values.items()]
    entry_id = database.execute_sql(sql, params).fetchone()[0]
    entry = LedgerEntry(__no_default__=True, id=entry_id, **values)
    entry.member, entry.card = member, card
    return entry


_ENTRY_SQL: dict[type, str] = {}


def _insert_returning_id_sql(model, names: list[str]) -> str:
    """`INSERT INTO table (columns of `names`) VALUES (…) RETURNING id`, with the engine's
    parameter marks (SQLite 3.35+ and PostgreSQL both return)."""
    db = database.obj
    fields = model._meta.fields
    columns = ", ".join(f'"{fields[name].column_name}"' for name in names)
    marks = ", ".join([db.param] * len(names))
    return f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks}) RETURNING "id"'


def history_query(member: Member, kind: str, card: Card | None = None):
    """The member's entries of one kind (optionally one card), newest first."""
    query = LedgerEntry.select(LedgerEntry, Card).join(Card, peewee.JOIN.LEFT_OUTER).where(
        (LedgerEntry.member == member) & (LedgerEntry.kind == kind))
    if card is not None:
        query = query.where(LedgerEntry.card == card)
    return query.order_by(LedgerEntry.id.desc())


# --- checks ----------------------------------------------------------------------------------

def check_same_partner(member: Member, card: Card) -> None:
    """NotFound unless the card belongs to the member's partner (callers look both up
    scoped to one partner; this keeps a slip from crossing partners)."""
    if card.partner_id != member.partner_id:
        raise NotFound("No such card.", field="card_id")


def check_stamp_count(count) -> None:
    """Invalid unless `count` is a whole number of stamps from 1 to STAMPS_PER_CALL_MAX."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= STAMPS_PER_CALL_MAX:
        raise Invalid(f"count must be a whole number from 1 to {STAMPS_PER_CALL_MAX}.", field="count")


def check_cashback_amount(amount) -> None:
    """Invalid unless `amount` is whole minor units from 1 to CASHBACK_AMOUNT_MAX."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= CASHBACK_AMOUNT_MAX:
        raise Invalid(f"amount must be a whole number of minor units from 1 to {CASHBACK_AMOUNT_MAX}.",
                      field="amount")
