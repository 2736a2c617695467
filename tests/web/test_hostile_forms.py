"""Hostile input to the portal's forms gets a clear answer and changes nothing, on both
engines (issue #9): text no database stores in any field, numbers a form cannot hold, and
request values that try to add lines to the log."""

from __future__ import annotations

import logging

import peewee
import pytest
from portal_helpers import PASSWORD, count

from portal import create_app, db
from portal.domain import catalog
from portal.models import ApiKey, Application, AppSecret, AuditEvent, Card, Partner, Program, Reward, User
from portal.web.permissions import PUBLIC, ROUTE_ROLES

pytestmark = pytest.mark.both_engines

NUL_VALUES = ["a\x00b", "\x00", "Café\x00"]


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def coffee(app, org) -> dict:
    with app.app_context():
        card = catalog.create_card(org.partner_id, "Coffee card")
        reward = catalog.create_reward(card, "Free coffee", 10)
        return {"card": card.public_id, "reward": reward.public_id}


def snapshot(app) -> tuple:
    """Everything a portal form can change."""
    with app.app_context():
        program = [(p.currency, p.referral_reward_kind, p.referral_amount) for p in Program.select()]
        cards = sorted((c.name, c.description) for c in Card.select())
        rewards = sorted((r.name, r.stamps_cost) for r in Reward.select())
        apps = sorted(a.name for a in Application.select())
        keys = sorted((k.name, k.revoked_at is None, k.expires_at is None) for k in ApiKey.select())
        return (program, cards, rewards, apps, keys, count(app, AppSecret), count(app, Partner), count(app, User))


def assert_refused(response, field: str, htmx: bool):
    body = text(response)
    assert response.status_code == 400, body[:500]
    assert f"“{field.replace('_', ' ')}”" in body and "NUL" in body and "nothing was changed" in body
    if htmx:
        assert response.headers["HX-Reswap"] == "none" and "<html" not in body


def test_nul_in_any_form_field_is_refused_naming_it_and_nothing_is_saved(app, signed_in, org, coffee):
    app_url = f"/developer/apps/{org.app_id}"
    forms = [
        ("/developer/apps", {"name": "Till"}, "name"),
        (f"{app_url}/keys", {"name": "Till", "mode": "test", "scopes": "stamps_read", "expires": "never"}, "name"),
        (f"{app_url}/keys", {"name": "Till", "mode": "test", "scopes": "stamps_read", "expires": "never"}, "scopes"),
        (f"{app_url}/keys", {"name": "Till", "mode": "test", "scopes": "stamps_read", "expires": "never"}, "mode"),
        (f"{app_url}/secret", {"grace": "24h"}, "grace"),
        (f"{app_url}/keys/{org.key_id}/roll", {"old_expires": "1h"}, "old_expires"),
        (f"{app_url}/keys/{org.key_id}/revoke", {}, "reason"),
        ("/program/cards", {"name": "Tea card", "description": ""}, "name"),
        ("/program/cards", {"name": "Tea card", "description": ""}, "description"),
        (f"/program/cards/{coffee['card']}", {"name": "Coffee card", "description": ""}, "description"),
        (f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie", "stamps_cost": "4"}, "name"),
        (f"/program/rewards/{coffee['reward']}", {"name": "Free coffee", "stamps_cost": "10"}, "name"),
        (f"/program/rewards/{coffee['reward']}", {"name": "Free coffee", "stamps_cost": "10"}, "stamps_cost"),
        ("/program/settings", {"currency": "USD", "referral_reward_kind": "none"}, "currency"),
        ("/program/settings", {"currency": "EUR", "referral_reward_kind": "stamps", "referral_card": coffee["card"],
                               "referral_stamps": "2", "reward_referrer": "on"}, "referral_card"),
    ]
    signed_in.get("/program")
    before = snapshot(app)
    for url, form, field in forms:
        for value in NUL_VALUES:
            for htmx in (False, True):
                res = signed_in.post(url, {**form, field: value}, htmx=htmx)
                assert_refused(res, field, htmx)
    # A field the form does not have, and the same in a multipart body.
    assert_refused(signed_in.post("/program/cards", {"name": "Tea", "note": "x\x00"}), "note", False)
    res = signed_in.client.post("/program/cards", data={"name": "Tea\x00", "csrf_token": signed_in.token},
                                content_type="multipart/form-data")
    assert_refused(res, "name", False)
    assert snapshot(app) == before


def test_nul_in_sign_up_and_log_in_is_refused_before_any_account_or_audit_record(app, portal, org):
    before = (snapshot(app), count(app, AuditEvent))
    portal.get("/signup")
    signup = {"business_name": "Corner Shop", "email": "shop@example.com", "password": PASSWORD}
    for field in signup:
        for value in NUL_VALUES:
            assert_refused(portal.post("/signup", {**signup, field: value}), field, False)
    for field, value in (("email", org.email + "\x00"), ("password", PASSWORD + "\x00"), ("next", "/\x00")):
        res = portal.post("/login", {"email": org.email, "password": PASSWORD, field: value})
        assert_refused(res, field, False)
    assert (snapshot(app), count(app, AuditEvent)) == before


def test_nul_in_a_portal_address_is_refused_before_any_lookup(signed_in, org):
    for url in ("/developer/apps/%00", f"/developer/apps/{org.app_id}/keys/%00", "/program?tab=%00",
                "/login?next=%2F%00"):
        res = signed_in.get(url)
        assert res.status_code == 400 and "NUL" in text(res), url


# -- numbers a form cannot hold ---------------------------------------------------------

NOT_NUMBERS = ["1e100", "1E3", "NaN", "Infinity", "-Infinity", "-0", "-5", "+5", "1_000", "٣", "５", "0x10", "0b1",
               "5.", "1,000", "five", "", " ", "9" * 40, "9" * 5000, "5" + " " * 600 + "9"]


def test_a_stamps_field_answers_a_form_error_for_anything_but_a_whole_number_in_range(app, signed_in, org, coffee):
    signed_in.get("/program")
    before = snapshot(app)
    urls = [(f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie"}, "stamps_cost"),
            (f"/program/rewards/{coffee['reward']}", {"name": "Free coffee"}, "stamps_cost"),
            ("/program/settings", {"currency": "EUR", "referral_reward_kind": "stamps", "referral_card": coffee["card"],
                                   "reward_referrer": "on"}, "referral_stamps")]
    for url, form, field in urls:
        for value in NOT_NUMBERS + ["0", "1001", "2.5", "10.0"]:
            for htmx in (False, True):
                res = signed_in.post(url, {**form, field: value}, htmx=htmx)
                assert res.status_code == (200 if htmx else 422), (url, value, text(res)[:300])
                assert "Enter a whole number" in text(res), (url, value)
    assert snapshot(app) == before
    # What a person types with spaces or leading zeros still means the number.
    assert signed_in.post(f"/program/rewards/{coffee['reward']}", {"name": "Free coffee", "stamps_cost": " 12 "}
                          ).status_code == 303
    assert signed_in.post(f"/program/cards/{coffee['card']}/rewards", {"name": "Cookie", "stamps_cost": "007"}
                          ).status_code == 303
    with app.app_context():
        assert sorted((r.name, r.stamps_cost) for r in Reward.select()) == [("Cookie", 7), ("Free coffee", 12)]


def test_a_cashback_amount_answers_a_form_error_for_anything_the_currency_cannot_hold(app, signed_in):
    signed_in.get("/program")
    before = snapshot(app)
    # "1,000" reads as 1.000 here (a decimal comma): answered below as too many decimals.
    cases = [(value, "EUR", "greater than zero") for value in NOT_NUMBERS + ["0", "0.00", "-1.50"] if value != "1,000"]
    cases += [("2.505", "EUR", "at most 2 decimal places"), ("0.001", "EUR", "at most 2 decimal places"),
              ("1,000", "EUR", "at most 2 decimal places"), ("2.500", "EUR", "at most 2 decimal places"),
              ("5.5", "JPY", "no decimal places"), ("5.0", "JPY", "no decimal places"),
              ("1.2345", "KWD", "at most 3 decimal places"),
              ("1000000.01", "EUR", "at most 1,000,000.00 EUR"), ("99999999999", "JPY", "at most 100,000,000 JPY")]
    for value, currency, says in cases:
        form = {"currency": currency, "referral_reward_kind": "cashback", "referral_cashback": value,
                "reward_referrer": "on"}
        for htmx in (False, True):
            res = signed_in.post("/program/settings", form, htmx=htmx)
            assert res.status_code == (200 if htmx else 422), (value, text(res)[:300])
            assert says in text(res), (value, currency)
    assert snapshot(app) == before
    for value, currency, minor in ((" 2,50 ", "EUR", 250), ("2.5", "EUR", 250), ("1000000", "EUR", 100_000_000),
                                   ("300", "JPY", 300), ("1.234", "KWD", 1234)):
        res = signed_in.post("/program/settings", {"currency": currency, "referral_reward_kind": "cashback",
                                                   "referral_cashback": value, "reward_referrer": "on"})
        assert res.status_code == 303, (value, text(res)[:300])
        with app.app_context():
            assert Program.get().referral_amount == minor


def test_the_key_and_secret_forms_answer_unknown_choices_with_a_form_error(app, signed_in, org):
    before = snapshot(app)
    app_url = f"/developer/apps/{org.app_id}"
    signed_in.get(app_url)
    for value in ("1e100", "NaN", "-0", "٣", "0x10", "30", " 30d", "", "never\x01"):
        form = {"name": "Till", "mode": "test", "scopes": "stamps_read", "expires": value}
        assert "Choose when the key expires" in text(signed_in.post(f"{app_url}/keys", form)), value
        res = signed_in.post(f"{app_url}/keys", {**form, "expires": "never", "mode": value})
        assert res.status_code == 422 and "Choose Test or Production" in text(res), value
        res = signed_in.post(f"{app_url}/keys", {**form, "expires": "never", "scopes": value})
        assert res.status_code == 422, value
        res = signed_in.post(f"{app_url}/secret", {"grace": value})
        assert res.status_code == 422 and "Choose how long" in text(res), value
        res = signed_in.post(f"{app_url}/keys/{org.key_id}/roll", {"old_expires": value})
        assert res.status_code == 422 and "Choose when the old key expires" in text(res), value
    assert snapshot(app) == before


# -- log lines --------------------------------------------------------------------------

# Slash-free, so that it stays in one path segment (a route's `<rest>`).
FORGED = "2026-01-01 00:00:00,000 ERROR portal.web: unhandled error on POST program settings"


@pytest.fixture
def failing_app(tmp_path, monkeypatch):
    """An app with (public) routes that fail the way real code can, under any path."""
    monkeypatch.setitem(ROUTE_ROLES, "boom", PUBLIC)
    monkeypatch.setitem(ROUTE_ROLES, "db_down", PUBLIC)
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    with app.app_context():
        db.migrate()

    @app.get("/boom/<rest>")
    def boom(rest):
        raise RuntimeError("detail\nwith a second line")

    @app.get("/db-down/<rest>")
    def db_down(rest):
        raise peewee.OperationalError("could not connect\nto server at 10.0.0.5")

    yield app
    db.database.close()


@pytest.mark.sqlite_only  # log lines, not SQL
def test_the_portal_failure_lines_stay_one_line_whatever_the_path(failing_app, caplog):
    client = failing_app.test_client()
    tail = "%0A" + FORGED.replace(" ", "%20")
    with caplog.at_level(logging.INFO, logger="portal"):
        assert client.get(f"/boom/x{tail}").status_code == 500
        assert client.get(f"/db-down/x{tail}").status_code == 503
        assert client.post(f"/program{tail}", data={"name": "x"}).status_code == 400  # no CSRF token
    logged = [record.getMessage() for record in caplog.records if record.name.startswith("portal")]
    # Each request's own line (portal.web, with its client) is escaped the same way.
    request_lines = [message for message in logged if message.startswith("portal ")]
    assert [line.split("2026-01-01")[0] for line in request_lines] == [
        "portal GET /boom/x\\n", "portal GET /db-down/x\\n", "portal POST /program\\n"]
    messages = [message for message in logged if not message.startswith("portal ")]
    assert len(messages) == 3
    assert messages[0].startswith("unhandled error on GET /boom/x\\n2026-01-01")
    assert messages[1].startswith("database unavailable (GET /db-down/x\\n2026-01-01")
    assert messages[1].endswith("could not connect")  # the driver's first line only
    assert messages[2].startswith("csrf check failed for POST /program\\n2026-01-01")
    assert not any("\n" in message or "\r" in message for message in logged)
    assert "Traceback" not in caplog.text
