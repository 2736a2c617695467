"""Credential changes raced from several threads, and history the database keeps.

Each thread has its own connection (peewee connections are per thread), as two portal
requests or two server processes would.
"""

from __future__ import annotations

import threading

import peewee
import pytest

from portal import db
from portal.domain import Conflict, catalog, ledger
from portal.domain.applications import create_application, issue_api_key, regenerate_secret, roll_api_key
from portal.models import ApiKey, AppSecret, Card, Reward, utcnow


@pytest.fixture(autouse=True)
def app_context(app):
    """Credential functions read the app's settings (pepper, encryption keys)."""
    with app.app_context():
        yield


def race(app, count, action):
    """Run `action()` in `count` threads released together; returns (results, errors)."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def worker():
        with app.app_context():
            db.database.connect(reuse_if_open=True)
            try:
                barrier.wait()
                results.append(action())
            except Exception as exc:  # collected and asserted on by the test
                errors.append(exc)
            finally:
                db.database.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_simultaneous_regenerations_leave_exactly_one_current_secret(app, partner):
    application, _ = create_application(partner, "Till")
    results, errors = race(app, 6, lambda: regenerate_secret(application, grace="now"))
    assert errors == []
    assert len(set(results)) == 6
    now = utcnow()
    live = AppSecret.select().where(
        (AppSecret.application == application) & (AppSecret.expires_at.is_null() | (AppSecret.expires_at > now))
    )
    assert [row.expires_at for row in live] == [None]
    assert live.get().last4 == AppSecret.select().order_by(AppSecret.id.desc()).get().last4


def test_a_key_rolled_twice_gets_one_replacement(app, partner):
    application, _ = create_application(partner, "Till")
    key, _ = issue_api_key(application, name="Checkout", mode="test", scopes=["stamps_read"])
    results, errors = race(app, 4, lambda: roll_api_key(key, old_expires="1h"))
    assert len(results) == 1
    assert len(errors) == 3 and all(isinstance(e, Conflict) for e in errors)
    assert "already rolled" in str(errors[0])
    assert ApiKey.select().where(ApiKey.rolled_from == key.id).count() == 1


def test_rolling_an_already_rolled_key_is_refused_with_a_message(partner):
    application, _ = create_application(partner, "Till")
    key, _ = issue_api_key(application, name="Checkout", mode="test", scopes=["stamps_read"])
    roll_api_key(key, old_expires="24h")
    with pytest.raises(Conflict, match="already rolled"):
        roll_api_key(ApiKey.get_by_id(key.id), old_expires="now")


def test_the_database_refuses_to_delete_a_card_or_reward_with_history(make_member, card):
    member = make_member(email="ana@example.com")
    ledger.add_stamps(member, card, 10)
    ledger.redeem_reward(member, card.free_coffee)
    # Even a delete that skipped the domain's checks cannot erase the ledger.
    with pytest.raises(peewee.IntegrityError):
        with db.database.atomic():
            Reward.delete().where(Reward.id == card.free_coffee.id).execute()
    with pytest.raises(peewee.IntegrityError):
        with db.database.atomic():
            Card.delete().where(Card.id == card.id).execute()
    with pytest.raises(Conflict):
        catalog.delete_card(card)
    assert ledger.stamp_balances(member)[0]["balance"] == 0
    assert member.ledger.count() == 2
