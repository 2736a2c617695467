"""Fixtures for API tests: `creds` (a partner, app and all-scopes test key) and `api`,
a SignedClient for the Flask test client. See tests/api/helpers.py for the signing."""

from __future__ import annotations

import pytest

from portal.domain import catalog
from portal.models import Partner
from tests.api.helpers import SignedClient, create_credentials


@pytest.fixture
def creds(app):
    """A fresh partner with an application and a test-mode key carrying every scope."""
    return create_credentials(app)


@pytest.fixture
def api(client, creds):
    """The test client, signing every request with `creds`."""
    return SignedClient(client, creds)


@pytest.fixture
def program(app, creds):
    """The partner's program: "Coffee card" with rewards "Cookie" (5) and "Free coffee" (10),
    and an empty "Lunch card"."""
    with app.app_context():
        partner = Partner.get_by_id(creds.partner_id)
        coffee = catalog.create_card(partner, "Coffee card", "One stamp per coffee")
        cookie = catalog.create_reward(coffee, "Cookie", 5)
        free_coffee = catalog.create_reward(coffee, "Free coffee", 10)
        lunch = catalog.create_card(partner, "Lunch card")
        return {"card": coffee.public_id, "cookie": cookie.public_id, "free_coffee": free_coffee.public_id,
                "lunch": lunch.public_id}


def create_member(api, email: str, **fields) -> dict:
    res = api.post("/v1/members", json={"email": email, **fields})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


@pytest.fixture
def member(api) -> str:
    """A member of the test mode; its id."""
    return create_member(api, "ann@example.com")["id"]
