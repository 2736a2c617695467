"""Domain fixtures: the real migrated database (a SQLite file; a fresh PostgreSQL database
too for modules marked `both_engines`), a partner, members, a card with a reward."""

from __future__ import annotations

import secrets

import pytest

from portal import db
from portal.domain import catalog
from portal.models import Member, Partner


@pytest.fixture
def database(app):
    """The app's database, connected in this thread."""
    db.database.connect(reuse_if_open=True)
    yield db.database
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def partner(database):
    return Partner.create(name="Corner Coffee")


@pytest.fixture
def make_member(partner):
    """make_member(email=..., phone=..., mode=..., owner=...) → a new Member."""

    def make(*, email=None, phone=None, mode="test", owner=None):
        return Member.create(
            partner=owner or partner, mode=mode, email=email, phone=phone,
            referral_code=secrets.token_hex(4).upper(),
        )

    return make


@pytest.fixture
def card(partner):
    """A "Coffee card" whose reward "Free coffee" costs 10 stamps (`card.free_coffee`)."""
    card = catalog.create_card(partner, "Coffee card")
    card.free_coffee = catalog.create_reward(card, "Free coffee", 10)
    return card

