"""Fixtures for webhook tests: a local receiver, a partner whose owner can sign in, and
deliveries run in this process (`deliver_all`) or by a real worker process."""

from __future__ import annotations

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def deliver_all(app):
    """deliver_all() → attempts made: rounds of the worker's own code until nothing is due."""
    from portal import db
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
