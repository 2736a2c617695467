"""A suspended partner (Partner.status other than "active"; DESIGN.md §14) has no portal
and no API: its users cannot log in, a session they already had shows why on every page
and changes nothing, and every key answers 403 account_disabled."""

from __future__ import annotations

import pytest
from portal_helpers import PASSWORD, count

from portal.models import Application, AuditEvent, Partner
from tests.api.helpers import Credentials, SignedClient

SUSPENDED_TEXT = "This partner account is suspended"


def suspend(app, org, status="disabled"):
    with app.app_context():
        Partner.update(status=status).where(Partner.id == org.partner_id).execute()


@pytest.mark.parametrize("status", ["disabled", "suspended"])
def test_a_suspended_partners_user_cannot_log_in(app, portal, org, status):
    suspend(app, org, status)
    portal.get("/login")
    res = portal.post("/login", {"email": org.email, "password": PASSWORD})
    assert res.status_code == 401
    assert SUSPENDED_TEXT in res.get_data(as_text=True)
    assert portal.get("/").status_code == 302  # still not logged in: to the log-in page
    with app.app_context():
        assert AuditEvent.get(AuditEvent.action == "login.refused").detail == "partner suspended"


def test_a_wrong_password_for_a_suspended_partner_says_only_that_it_is_wrong(app, portal, org):
    suspend(app, org)
    portal.get("/login")
    res = portal.post("/login", {"email": org.email, "password": "not the password at all"})
    assert res.status_code == 401
    assert SUSPENDED_TEXT not in res.get_data(as_text=True)


def test_an_existing_session_sees_why_on_every_page_and_changes_nothing(app, signed_in, org):
    assert signed_in.get("/").status_code == 200
    suspend(app, org)
    for url in ("/", "/developer", "/team", "/account"):
        res = signed_in.get(url)
        assert res.status_code == 403, url
        assert SUSPENDED_TEXT in res.get_data(as_text=True)
    before = count(app, Application)
    created = signed_in.post("/developer/apps", {"name": "Another"})
    assert created.status_code == 403
    htmx = signed_in.post("/developer/apps", {"name": "Another"}, htmx=True)
    assert htmx.status_code == 403 and SUSPENDED_TEXT in htmx.get_data(as_text=True)
    assert count(app, Application) == before
    # Log-out still works, and a reactivated partner's user logs in again.
    assert signed_in.post("/logout").status_code == 303
    suspend(app, org, "active")
    signed_in.login(org.email)
    assert signed_in.get("/").status_code == 200


def test_every_key_of_a_suspended_partner_answers_403_account_disabled(app, client, org):
    suspend(app, org)
    api = SignedClient(client, Credentials(org.app_id, org.app_secret, org.key_plaintext, org.partner_id))
    res = api.get("/v1/key")
    assert res.status_code == 403
    assert res.get_json()["error"]["code"] == "account_disabled"


def test_suspended_between_the_password_and_the_code_the_code_step_refuses(app, signed_in, org):
    from test_account_security import next_code, password_step, turn_on_two_factor

    totp, _ = turn_on_two_factor(signed_in)
    signed_in.post("/logout")
    assert password_step(signed_in, org.email).location == "/login/code"
    suspend(app, org)
    res = signed_in.post("/login/code", {"code": next_code(totp)})
    assert res.status_code == 401 and SUSPENDED_TEXT in res.get_data(as_text=True)
    assert signed_in.get("/developer").status_code == 302  # not logged in
