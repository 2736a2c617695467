"""The Program page: owners set the currency and referral reward and manage stamp cards
and rewards. Every form is checked as an htmx request, a plain post and without CSRF."""

from __future__ import annotations

import pytest
from portal_helpers import PASSWORD

from portal.domain import catalog, ledger
from portal.models import Card, Member, Partner, Program, Reward, User


def program_of(app, partner_id) -> Program:
    with app.app_context():
        return catalog.program_for(partner_id)


def cards_of(app, partner_id) -> list:
    with app.app_context():
        return [(c.name, [(r.name, r.stamps_cost) for r in c.reward_list]) for c in catalog.list_cards(partner_id)]


@pytest.fixture
def coffee(app, org) -> dict:
    """A "Coffee card" with a "Free coffee" reward for 10 stamps."""
    with app.app_context():
        card = catalog.create_card(org.partner_id, "Coffee card")
        reward = catalog.create_reward(card, "Free coffee", 10)
        return {"card": card.public_id, "reward": reward.public_id}


def test_the_sidebar_leads_owners_to_the_program(signed_in):
    page = signed_in.get("/program")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Program settings" in html and "Stamp cards" in html and 'aria-current="page"' in html
    assert 'href="/program"' in signed_in.get("/developer").get_data(as_text=True)


def test_logged_out_visitors_are_sent_to_log_in(portal):
    res = portal.get("/program")
    assert res.status_code == 302 and "/login" in res.headers["Location"]


def test_a_developer_user_may_not_see_the_program(app, portal, org):
    with app.app_context():
        User.create(partner=org.partner_id, email="dev@bakery.example", role="developer",
                    password_hash=User.get_by_id(org.user_id).password_hash)
    portal.login("dev@bakery.example", PASSWORD)
    assert portal.get("/program").status_code == 403


# -- settings ---------------------------------------------------------------------------


def test_saving_settings_with_htmx_swaps_the_settings_section(app, signed_in, org, coffee):
    signed_in.get("/program")
    res = signed_in.post("/program/settings", {
        "currency": "usd", "referral_reward_kind": "stamps", "referral_card": coffee["card"],
        "referral_stamps": "3", "reward_referrer": "on", "reward_referee": "on"}, htmx=True)
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert html.lstrip().startswith("<section") and 'id="program-settings"' in html
    assert "Program settings saved." in html and 'hx-swap-oob="true"' in html  # the message, out of band
    program = program_of(app, org.partner_id)
    assert (program.currency, program.referral_reward_kind, program.referral_amount) == ("USD", "stamps", 3)
    assert program.reward_referrer and program.reward_referee


def test_saving_settings_without_javascript_redirects_back(app, signed_in, org):
    signed_in.get("/program")
    res = signed_in.post("/program/settings", {
        "currency": "JPY", "referral_reward_kind": "cashback", "referral_cashback": "500", "reward_referee": "on"})
    assert res.status_code == 303 and res.headers["Location"].endswith("/program#program-settings")
    program = program_of(app, org.partner_id)
    assert (program.currency, program.referral_reward_kind, program.referral_amount) == ("JPY", "cashback", 500)
    assert not program.reward_referrer and program.reward_referee
    page = signed_in.get("/program").get_data(as_text=True)
    assert "Program settings saved." in page and 'value="500"' in page


def test_a_cashback_reward_is_entered_in_major_units_and_stored_in_minor_units(app, signed_in, org):
    signed_in.get("/program")
    signed_in.post("/program/settings", {"currency": "EUR", "referral_reward_kind": "cashback",
                                         "referral_cashback": "2.50", "reward_referrer": "on"})
    assert program_of(app, org.partner_id).referral_amount == 250
    assert 'value="2.50"' in signed_in.get("/program").get_data(as_text=True)


@pytest.mark.parametrize("fields, message", [
    ({"currency": "XYZ"}, "ISO 4217"),
    ({"referral_reward_kind": "stamps", "referral_stamps": "2", "reward_referrer": "on"}, "Choose the card"),
    ({"referral_reward_kind": "cashback", "referral_cashback": "1.234", "reward_referrer": "on"}, "decimal places"),
    ({"referral_reward_kind": "cashback", "referral_cashback": "-1", "reward_referrer": "on"}, "greater than zero"),
    ({"referral_reward_kind": "cashback", "referral_cashback": "5"}, "Reward the referrer, the new member"),
])
def test_bad_settings_are_explained_next_to_the_field(app, signed_in, org, fields, message):
    signed_in.get("/program")
    data = {"currency": "EUR", "referral_reward_kind": "none", **fields}
    plain = signed_in.post("/program/settings", data)
    assert plain.status_code == 422 and message in plain.get_data(as_text=True)
    htmx = signed_in.post("/program/settings", data, htmx=True)
    assert htmx.status_code == 200 and message in htmx.get_data(as_text=True)
    assert program_of(app, org.partner_id).currency == "EUR"
    assert program_of(app, org.partner_id).referral_reward_kind == "none"


def test_the_currency_stays_once_cashback_was_credited(app, signed_in, org):
    with app.app_context():
        member = Member.create(partner=org.partner_id, mode="test", email="ann@example.com", referral_code="ANN12345")
        ledger.credit_cashback(member, 100)
    signed_in.get("/program")
    res = signed_in.post("/program/settings", {"currency": "USD", "referral_reward_kind": "none"})
    assert res.status_code == 422 and "members already hold cashback" in res.get_data(as_text=True)
    assert program_of(app, org.partner_id).currency == "EUR"


def test_settings_without_a_csrf_token_change_nothing(app, signed_in, org):
    signed_in.get("/program")
    for htmx in (False, True):
        res = signed_in.post("/program/settings", {"currency": "USD", "referral_reward_kind": "none"},
                             htmx=htmx, csrf=False)
        assert res.status_code == 400
    assert program_of(app, org.partner_id).currency == "EUR"


# -- cards and rewards --------------------------------------------------------------------


def test_adding_a_card_with_htmx_swaps_the_card_list_and_refreshes_the_referral_choices(app, signed_in, org):
    signed_in.get("/program")
    res = signed_in.post("/program/cards", {"name": "Coffee card", "description": "One per drink"}, htmx=True)
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and html.lstrip().startswith('<section id="cards"')
    assert "Coffee card" in html and "Card “Coffee card” added" in html
    assert 'id="program-settings"' in html and html.count('hx-swap-oob="true"') == 2
    assert cards_of(app, org.partner_id) == [("Coffee card", [])]


def test_adding_a_card_without_javascript_redirects_to_it(app, signed_in, org):
    signed_in.get("/program")
    res = signed_in.post("/program/cards", {"name": "Lunch card"})
    assert res.status_code == 303
    card_id = Card.get(Card.name == "Lunch card").public_id
    assert res.headers["Location"].endswith(f"/program#card-{card_id}")


def test_a_card_needs_a_name(app, signed_in, org):
    signed_in.get("/program")
    assert "Name the card" in signed_in.post("/program/cards", {"name": "  "}, htmx=True).get_data(as_text=True)
    res = signed_in.post("/program/cards", {"name": ""})
    assert res.status_code == 422 and "Name the card" in res.get_data(as_text=True)
    assert cards_of(app, org.partner_id) == []


def test_adding_a_card_without_csrf_is_refused(app, signed_in, org):
    signed_in.get("/program")
    for htmx in (False, True):
        assert signed_in.post("/program/cards", {"name": "Sneaky"}, htmx=htmx, csrf=False).status_code == 400
    assert cards_of(app, org.partner_id) == []


def test_renaming_a_card_swaps_only_that_card(app, signed_in, org, coffee):
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}", {"name": "Hot drinks", "description": ""}, htmx=True)
    html = res.get_data(as_text=True)
    assert html.lstrip().startswith(f'<article id="card-{coffee["card"]}"') and "Hot drinks" in html
    assert cards_of(app, org.partner_id)[0][0] == "Hot drinks"
    res = signed_in.post(f"/program/cards/{coffee['card']}", {"name": "Coffee again"})
    assert res.status_code == 303 and cards_of(app, org.partner_id)[0][0] == "Coffee again"
    assert signed_in.post(f"/program/cards/{coffee['card']}", {"name": "x"}, csrf=False).status_code == 400


def test_adding_editing_and_deleting_rewards(app, signed_in, org, coffee):
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie", "stamps_cost": "4"},
                         htmx=True)
    assert res.status_code == 200 and "Cookie" in res.get_data(as_text=True)
    res = signed_in.post(f"/program/rewards/{coffee['reward']}", {"name": "Large coffee", "stamps_cost": "12"})
    assert res.status_code == 303
    assert cards_of(app, org.partner_id) == [("Coffee card", [("Cookie", 4), ("Large coffee", 12)])]
    res = signed_in.post(f"/program/rewards/{coffee['reward']}/delete", {}, htmx=True)
    assert res.status_code == 200 and "Reward “Large coffee” deleted." in res.get_data(as_text=True)
    assert cards_of(app, org.partner_id) == [("Coffee card", [("Cookie", 4)])]


@pytest.mark.parametrize("cost", ["0", "-3", "1001", "ten", ""])
def test_a_reward_costs_1_to_1000_stamps(app, signed_in, org, coffee, cost):
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie", "stamps_cost": cost})
    assert res.status_code == 422 and "whole number" in res.get_data(as_text=True)
    htmx = signed_in.post(f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie", "stamps_cost": cost},
                          htmx=True)
    assert "whole number" in htmx.get_data(as_text=True)
    assert cards_of(app, org.partner_id) == [("Coffee card", [("Free coffee", 10)])]


def test_reward_forms_need_csrf(app, signed_in, org, coffee):
    signed_in.get("/program")
    for url in (f"/program/cards/{coffee['card']}/rewards", f"/program/rewards/{coffee['reward']}",
                f"/program/rewards/{coffee['reward']}/delete"):
        for htmx in (False, True):
            res = signed_in.post(url, {"name": "X", "stamps_cost": "1"}, htmx=htmx, csrf=False)
            assert res.status_code == 400
    assert cards_of(app, org.partner_id) == [("Coffee card", [("Free coffee", 10)])]


def test_an_unused_card_can_be_deleted(app, signed_in, org, coffee):
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}/delete", {}, htmx=True)
    assert res.status_code == 200 and "Card “Coffee card” deleted." in res.get_data(as_text=True)
    assert cards_of(app, org.partner_id) == []
    with app.app_context():
        assert Reward.select().count() == 0


def test_a_card_with_stamp_history_or_a_redeemed_reward_stays(app, signed_in, org, coffee):
    with app.app_context():
        member = Member.create(partner=org.partner_id, mode="test", email="ann@example.com", referral_code="ANN12345")
        card = Card.get(Card.public_id == coffee["card"])
        ledger.add_stamps(member, card, 10)
        ledger.redeem_reward(member, Reward.get(Reward.public_id == coffee["reward"]))
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}/delete", {})
    assert res.status_code == 409 and "has stamps, history or claims" in res.get_data(as_text=True)
    res = signed_in.post(f"/program/rewards/{coffee['reward']}/delete", {}, htmx=True)
    assert "Members have redeemed this reward" in res.get_data(as_text=True)
    assert cards_of(app, org.partner_id) == [("Coffee card", [("Free coffee", 10)])]


def test_the_referral_card_cannot_be_deleted(app, signed_in, org, coffee):
    with app.app_context():
        catalog.update_program(Partner.get_by_id(org.partner_id), catalog.ProgramSettings(
            currency="EUR", referral_reward_kind="stamps", referral_card_id=coffee["card"], referral_amount=1))
    signed_in.get("/program")
    res = signed_in.post(f"/program/cards/{coffee['card']}/delete", {}, htmx=True)
    assert "receives referral stamps" in res.get_data(as_text=True)
    assert len(cards_of(app, org.partner_id)) == 1


def test_another_partners_cards_and_rewards_are_404(app, signed_in, org, other_org):
    with app.app_context():
        theirs = catalog.create_card(other_org.partner_id, "Rival card")
        reward = catalog.create_reward(theirs, "Rival reward", 3)
    signed_in.get("/program")
    assert "Rival card" not in signed_in.get("/program").get_data(as_text=True)
    for url in (f"/program/cards/{theirs.public_id}", f"/program/cards/{theirs.public_id}/delete",
                f"/program/cards/{theirs.public_id}/rewards", f"/program/rewards/{reward.public_id}",
                f"/program/rewards/{reward.public_id}/delete"):
        assert signed_in.post(url, {"name": "Mine now", "stamps_cost": "1"}).status_code == 404
    assert cards_of(app, other_org.partner_id) == [("Rival card", [("Rival reward", 3)])]
    res = signed_in.post("/program/settings", {"currency": "EUR", "referral_reward_kind": "stamps",
                                               "referral_card": theirs.public_id, "referral_stamps": "1",
                                               "reward_referrer": "on"})
    assert res.status_code == 422 and program_of(app, org.partner_id).referral_reward_kind == "none"
