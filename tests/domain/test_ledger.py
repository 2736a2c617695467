"""Stamps and cashback ledgers on a real database file: exact under concurrency, never
below zero, and nothing half-written when a statement fails."""

from __future__ import annotations

import itertools
import threading

import peewee
import pytest

from portal import db
from portal.api.stamps import entry_json
from portal.domain import Conflict, Invalid, NotFound, ledger
from portal.models import LedgerEntry, Member, Redemption, StampBalance

pytestmark = pytest.mark.both_engines


def run_concurrently(count: int, action) -> list:
    """Run `action()` in `count` threads started together; returns each result or error."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        barrier.wait()
        # Connect after the barrier: a PostgreSQL pool smaller than the thread count
        # would otherwise be held by threads waiting on it.
        try:
            db.database.connect(reuse_if_open=True)
            results[i] = action()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            if not db.database.is_closed():
                db.database.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def refuse_inserts(table: str) -> None:
    """Make every INSERT into `table` fail in the database itself, as a full disk or a
    lost connection would, on either engine."""
    if db.is_postgres():
        db.database.execute_sql(
            "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql")
        db.database.execute_sql(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_insert()")
    else:
        db.database.execute_sql(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")


def stamps_of(member, card) -> int:
    return StampBalance.select(StampBalance.balance).where(
        (StampBalance.member == member) & (StampBalance.card == card)).scalar() or 0


def entries_sum(member, kind) -> int:
    return LedgerEntry.select(peewee.fn.SUM(LedgerEntry.amount)).where(
        (LedgerEntry.member == member) & (LedgerEntry.kind == kind)).scalar() or 0


def test_credit_writes_an_entry_with_the_balance_after(card, make_member):
    member = make_member(email="ann@example.com")
    first = ledger.add_stamps(member, card, 3, reference="order-1")
    second = ledger.add_stamps(member, card, 4)
    assert (first.amount, first.balance_after, first.reference) == (3, 3, "order-1")
    assert (second.amount, second.balance_after) == (4, 7)
    assert first.public_id.startswith("txn_")
    assert stamps_of(member, card) == 7


def test_redeeming_a_reward_spends_its_cost_and_records_the_redemption(card, make_member):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 12)
    redemption = ledger.redeem_reward(member, card.free_coffee)
    assert redemption.public_id.startswith("red_")
    assert (redemption.entry.amount, redemption.entry.balance_after) == (-10, 2)
    assert stamps_of(member, card) == 2


def test_redeeming_without_enough_stamps_is_refused_and_writes_nothing(card, make_member):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 9)
    with pytest.raises(Conflict) as refused:
        ledger.redeem_reward(member, card.free_coffee)
    assert refused.value.code == "insufficient_stamps"
    assert stamps_of(member, card) == 9
    assert LedgerEntry.select().count() == 1 and Redemption.select().count() == 0


def test_redeeming_on_a_card_never_stamped_is_insufficient(card, make_member):
    with pytest.raises(Conflict):
        ledger.redeem_reward(make_member(email="ann@example.com"), card.free_coffee)


def test_cashback_credit_and_redeem_keep_the_balance(make_member):
    member = make_member(email="ann@example.com")
    ledger.credit_cashback(member, 500, description="Order 1")
    entry = ledger.redeem_cashback(member, 120, reference="basket-9")
    assert (entry.amount, entry.balance_after, entry.source) == (-120, 380, "redeem")
    assert ledger.cashback_balance(member) == 380
    with pytest.raises(Conflict) as refused:
        ledger.redeem_cashback(member, 381)
    assert refused.value.code == "insufficient_balance"
    assert ledger.cashback_balance(member) == 380 == entries_sum(member, "cashback")


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("bad", [0, -5, 10**13, 1.5, True, "10"])
def test_cashback_amounts_must_be_positive_whole_minor_units(make_member, bad):
    member = make_member(email="ann@example.com")
    with pytest.raises(Invalid):
        ledger.credit_cashback(member, bad)
    assert LedgerEntry.select().count() == 0


def test_thirty_concurrent_cashback_redemptions_of_ten_from_a_hundred(make_member):
    member = make_member(email="ann@example.com")
    ledger.credit_cashback(member, 100)

    results = run_concurrently(30, lambda: ledger.redeem_cashback(member, 10))

    succeeded = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(succeeded) == 10 and len(refused) == 20, results
    assert ledger.cashback_balance(member) == 0
    assert entries_sum(member, "cashback") == 0
    assert sorted(e.balance_after for e in succeeded) == list(range(0, 100, 10))


def test_thirty_concurrent_stamp_redemptions_of_ten_from_a_hundred(card, make_member):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 100)

    results = run_concurrently(30, lambda: ledger.redeem_reward(member, card.free_coffee))

    succeeded = [r for r in results if isinstance(r, Redemption)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(succeeded) == 10 and len(refused) == 20, results
    assert stamps_of(member, card) == 0
    assert entries_sum(member, "stamps") == 0
    assert Redemption.select().count() == 10


def test_concurrent_credits_and_debits_add_up(card, make_member):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 50)
    turns = itertools.count()

    def credit_or_redeem():
        if next(turns) % 2:
            return ledger.add_stamps(member, card, 5)
        return ledger.redeem_reward(member, card.free_coffee)

    results = run_concurrently(20, credit_or_redeem)

    assert sum(isinstance(r, LedgerEntry) for r in results) == 10  # every credit went through
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    redeemed = sum(isinstance(r, Redemption) for r in results)
    assert stamps_of(member, card) == 50 + 10 * 5 - 10 * redeemed == entries_sum(member, "stamps") >= 0
    # Every entry's balance_after is the running sum of the entries up to it.
    running = 0
    for entry in LedgerEntry.select().where(LedgerEntry.member == member).order_by(LedgerEntry.id):
        running += entry.amount
        assert entry.balance_after == running


def test_a_failure_after_the_balance_update_leaves_nothing_behind(card, make_member, database):
    """The ledger insert (the second statement) fails: the balance change rolls back with it."""
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 20)
    ledger.credit_cashback(member, 300)
    refuse_inserts("ledger_entry")

    with pytest.raises(peewee.DatabaseError):
        ledger.redeem_cashback(member, 100)
    with pytest.raises(peewee.DatabaseError):
        ledger.add_stamps(member, card, 5)
    with pytest.raises(peewee.DatabaseError):
        ledger.redeem_reward(member, card.free_coffee)

    assert ledger.cashback_balance(member) == 300
    assert stamps_of(member, card) == 20
    assert LedgerEntry.select().count() == 2


def test_a_failed_redemption_row_undoes_the_debit_and_its_entry(card, make_member, database):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 20)
    refuse_inserts("redemption")
    with pytest.raises(peewee.DatabaseError):
        ledger.redeem_reward(member, card.free_coffee)
    assert stamps_of(member, card) == 20
    assert LedgerEntry.select().count() == 1


def test_the_database_refuses_a_negative_balance_even_without_the_condition(card, make_member):
    """The CHECK constraints are the last line of defence behind the conditional update."""
    member = make_member(email="ann@example.com")
    with pytest.raises(peewee.IntegrityError):
        Member.update(cashback_balance=Member.cashback_balance - 1).where(Member.id == member.id).execute()


def test_history_is_newest_first_and_per_kind(card, make_member):
    member = make_member(email="ann@example.com")
    ledger.add_stamps(member, card, 1)
    ledger.credit_cashback(member, 5)
    ledger.add_stamps(member, card, 2)
    stamps = list(ledger.history_query(member, "stamps"))
    assert [e.amount for e in stamps] == [2, 1]
    assert [e.amount for e in ledger.history_query(member, "cashback")] == [5]
    data = entry_json(stamps[0], member.public_id)
    assert data["card_id"] == card.public_id and data["created_at"].endswith("Z")


def test_stamps_never_cross_partners(card, make_member):
    from portal.models import Partner

    stranger = make_member(email="eve@example.com", owner=Partner.create(name="Elsewhere"))
    with pytest.raises(NotFound):
        ledger.add_stamps(stranger, card, 1)
    with pytest.raises(NotFound):
        ledger.redeem_reward(stranger, card.free_coffee)
    assert LedgerEntry.select().count() == 0
