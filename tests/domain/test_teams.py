"""Team and account-security rules that depend on the database's behaviour under
concurrency: the last owner, the throttle's count, a TOTP code used once, tokens that
work once. Each thread has its own connection, as two server processes would."""

from __future__ import annotations

import threading
import time

import pyotp
import pytest

from portal import db
from portal.domain import Conflict, DomainError, RateLimited, throttle, two_factor
from portal.domain.accounts import create_partner_account, passwords
from portal.domain.team import accept_invite, change_role, invite_teammate
from portal.models import Attempt, RecoveryCode, User

PASSWORD = "a long enough passphrase"


@pytest.fixture(autouse=True)
def app_context(app):
    with app.app_context():
        yield


def race(app, count, action):
    """Run `action(i)` in `count` threads released together; returns (results, errors)."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def worker(i):
        with app.app_context():
            db.database.connect(reuse_if_open=True)
            try:
                barrier.wait()
                results.append(action(i))
            except Exception as exc:  # collected and asserted on by the test
                errors.append(exc)
            finally:
                db.database.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


@pytest.fixture
def owner(database):
    return create_partner_account("Corner Coffee", "owner@coffee.example", PASSWORD)


def _teammate(owner, email, role):
    return User.create(partner=owner.partner_id, email=email, password_hash=passwords().hash(PASSWORD), role=role)


def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, owner):
    other = _teammate(owner, "second@coffee.example", "owner")
    pair = [(owner, other), (other, owner)]
    results, errors = race(app, 2, lambda i: change_role(pair[i][0], pair[i][1].id, "admin"))
    assert len(results) == 1 and len(errors) == 1
    # The second sees the first's change: either its target is the last owner, or it is
    # no longer an owner itself.
    assert isinstance(errors[0], DomainError) and errors[0].code in ("last_owner", "forbidden")
    assert User.select().where((User.partner == owner.partner_id) & (User.role == "owner")).count() == 1


def test_the_throttle_lets_exactly_its_limit_through_when_raced(app, database):
    limit = throttle.LOGIN_EMAIL
    results, errors = race(app, 12, lambda i: throttle.reserve((limit, "victim@example.com")))
    assert len(results) == limit.count
    assert len(errors) == 12 - limit.count and all(isinstance(e, RateLimited) for e in errors)
    assert all(0 < e.retry_after <= 15 * 60 for e in errors)
    # Refused attempts are not counted: only the ones let through are stored.
    assert Attempt.select().count() == limit.count


def test_the_throttle_counts_one_by_one_up_to_its_limit(database):
    for _ in range(throttle.LOGIN_EMAIL.count):
        throttle.reserve((throttle.LOGIN_EMAIL, "victim@example.com"))
    with pytest.raises(RateLimited) as refused:
        throttle.reserve((throttle.LOGIN_EMAIL, "victim@example.com"))
    assert "Try again in 15 minutes" in refused.value.message
    throttle.reserve((throttle.LOGIN_EMAIL, "someone-else@example.com"))  # another subject is not affected


def test_the_throttle_stores_no_email_or_address(database):
    throttle.reserve((throttle.LOGIN_EMAIL, "who@example.com"), (throttle.LOGIN_ADDRESS, "203.0.113.9"))
    stored = {row.subject for row in Attempt.select()}
    assert len(stored) == 2 and not any("@" in s or "203.0" in s for s in stored)


def test_a_totp_code_is_accepted_once_even_when_raced(app, owner):
    secret = two_factor.start_setup(owner)
    totp = pyotp.TOTP(secret)
    two_factor.turn_on(User.get_by_id(owner.id), totp.now())
    user = User.get_by_id(owner.id)
    # The next step's code (accepted within the drift window), raced by four "processes".
    code = totp.generate_otp(totp.timecode(time.time()) + 1)
    results, errors = race(app, 4, lambda i: two_factor.check_code(User.get_by_id(user.id), code))
    assert errors == []
    assert sorted(results, key=str) == [None, None, None, "code"]


def test_a_recovery_code_works_once_even_when_raced(app, owner):
    secret = two_factor.start_setup(owner)
    codes = two_factor.turn_on(User.get_by_id(owner.id), pyotp.TOTP(secret).now())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert not any(code in row.code_hash for row in RecoveryCode.select() for code in codes)
    results, errors = race(app, 4, lambda i: two_factor.check_code(User.get_by_id(owner.id), codes[0].upper()))
    assert errors == []
    assert sorted(results, key=str) == [None, None, None, "recovery code"]
    assert two_factor.recovery_codes_left(owner) == 9


def test_an_invite_joins_exactly_one_account_when_raced(app, owner):
    new = invite_teammate(owner, "dev@coffee.example", "developer")
    results, errors = race(app, 3, lambda i: accept_invite(new.token, PASSWORD))
    assert len(results) == 1 and all(isinstance(e, Conflict) for e in errors)
    joined = User.get(User.email == "dev@coffee.example")
    assert joined.role == "developer" and joined.partner_id == owner.partner_id
