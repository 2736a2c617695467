"""`loyalty-portal demo` creates a full program a partner can call the API against."""

from __future__ import annotations

from portal.domain import catalog
from portal.domain.demo import create_demo
from portal.models import Application, Partner


def test_the_demo_partner_has_cards_with_rewards_a_currency_and_a_referral_rule(app, database):
    with app.app_context():
        creds = create_demo()
    assert set(creds) == {"email", "password", "app_id", "app_secret", "test_key", "prod_key"}
    partner = Partner.get_by_id(Application.get(Application.app_id == creds["app_id"]).partner_id)
    cards = catalog.list_cards(partner)
    assert [c.name for c in cards] == ["Coffee card", "Lunch card"]
    assert [(r.name, r.stamps_cost) for r in cards[0].reward_list] == [("Free pastry", 5), ("Free coffee", 10)]
    program = catalog.program_for(partner)
    assert program.currency == "EUR"
    assert (program.referral_reward_kind, program.referral_card_id, program.referral_amount) == (
        "stamps", cards[0].id, 2)
    assert program.reward_referrer and program.reward_referee
