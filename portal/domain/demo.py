"""`loyalty-portal demo`: a partner, its program, an application and keys to try things with."""

from __future__ import annotations

import secrets

from portal.db import database
from portal.domain import catalog
from portal.domain.accounts import create_partner_account
from portal.domain.applications import create_application, issue_api_key
from portal.domain.catalog import ProgramSettings
from portal.scopes import SCOPE_NAMES

DEMO_CARDS = (
    ("Coffee card", "One stamp per hot drink.", (("Free pastry", 5), ("Free coffee", 10))),
    ("Lunch card", "One stamp per lunch.", (("Free lunch", 8),)),
)


def create_demo() -> dict:
    """Create a fresh demo partner (a new email each run) and return its credentials.

    The partner gets a full program: EUR cashback, a coffee card and a lunch card with
    rewards, and a referral rule (2 coffee stamps to the referrer and to the new member).
    """
    suffix = secrets.token_hex(3)
    email = f"demo-{suffix}@example.com"
    password = secrets.token_urlsafe(12)
    user = create_partner_account("Demo Coffee", email, password, via="demo")
    with database.atomic():
        create_demo_program(user.partner, by=user)
    app, app_secret = create_application(user.partner, "Demo app", by=user)
    _, test_key = issue_api_key(app, name="Demo test key", mode="test", scopes=SCOPE_NAMES, by=user)
    _, prod_key = issue_api_key(app, name="Demo prod key", mode="prod", scopes=SCOPE_NAMES, by=user)
    return {
        "email": email, "password": password, "app_id": app.app_id, "app_secret": app_secret,
        "test_key": test_key, "prod_key": prod_key,
    }


def create_demo_program(partner, *, by=None):
    """The demo's program: its cards with rewards, EUR, and the referral rule."""
    cards = []
    for name, description, rewards in DEMO_CARDS:
        card = catalog.create_card(partner, name, description, by=by)
        for reward_name, cost in rewards:
            catalog.create_reward(card, reward_name, cost, by=by)
        cards.append(card)
    return catalog.update_program(partner, ProgramSettings(
        currency="EUR", referral_reward_kind="stamps", referral_card_id=cards[0].public_id, referral_amount=2,
        reward_referrer=True, reward_referee=True), by=by)
