"""Fixtures for webhook tests: a local receiver, a partner whose owner can sign in, and
deliveries run in this process (`deliver_all`) or by a real worker process."""

from __future__ import annotations

import pytest

from portal import create_app, db
from tests.webhooks.receiver import Receiver

RETRY_SECONDS = "1,1"  # a short schedule (LOYALTY_WEBHOOK_RETRY_SECONDS): three attempts in all


@pytest.fixture
def app(tmp_path, database_url):
    """The app (as tests/conftest.py's) with the short retry schedule."""
    application = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                              "PASSWORD_HASHING": "fast", "WEBHOOK_RETRY_SECONDS": RETRY_SECONDS})
    yield application
    db.close_all()


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def deliver_all(app):
    """deliver_all() → attempts made: rounds of the worker's own code until nothing is due."""
    from portal.webhooks_worker import deliver_due

    def run(rounds: int = 50) -> int:
        made = 0
        with app.app_context():
            for _ in range(rounds):
                done = deliver_due(100)
                made += done
                if not done:
                    break
            db.release_connection()
        return made

    return run
