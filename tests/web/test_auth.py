"""Sign-up, log-in, log-out and where they lead."""

from __future__ import annotations

import argon2
import pytest
from portal_helpers import PASSWORD, PortalClient, count

from portal import create_app, db
from portal.domain.accounts import create_partner_account
from portal.models import AuditEvent, Invite, Partner, User


def signup(portal: PortalClient, email="new@shop.example", business="New Shop", password=PASSWORD):
    portal.get("/signup")
    return portal.post("/signup", {"business_name": business, "email": email, "password": password})


def test_signup_creates_an_organisation_and_logs_its_owner_in(app, portal):
    response = signup(portal)
    assert response.status_code == 303 and response.location == "/"
    home = portal.get("/")
    assert home.status_code == 200
    assert "New Shop" in home.get_data(as_text=True)
    assert "Log out" in home.get_data(as_text=True)
    with app.app_context():
        user = User.get(User.email == "new@shop.example")
        assert user.role == "owner" and user.partner.name == "New Shop"
        assert user.password_hash.startswith("$argon2")
        assert AuditEvent.select().where(AuditEvent.action == "account.signup").count() == 1


def test_second_signup_with_the_same_email_says_so_and_creates_nothing(app, portal):
    signup(portal)
    other = PortalClient(app.test_client())
    response = signup(other, email="NEW@shop.example", business="Impostor")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "An account with this email already exists" in page
    assert count(app, User) == 1 and count(app, Partner) == 1


@pytest.mark.parametrize("field, value, message", [
    ("password", "short", "at least 10 characters"),
    ("email", "not-an-email", "valid email address"),
    ("business_name", "   ", "Enter your business name"),
    ("business_name", "x" * 5000, "too long"),
    ("email", "a" * 5000 + "@example.com", "too long"),
])
def test_signup_with_a_bad_field_shows_its_message_and_keeps_the_other_values(app, portal, field, value, message):
    values = {"business": "New Shop", "email": "new@shop.example", "password": PASSWORD}
    values[{"business_name": "business"}.get(field, field)] = value
    response = signup(portal, **values)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in page
    assert PASSWORD not in page  # a password is never echoed back
    assert count(app, User) == 0


def test_invite_only_signup_refuses_uninvited_emails_and_accepts_invited_ones(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "SIGNUP": "invite", "TESTING": True, "PASSWORD_HASHING": "fast"})
    with app.app_context():
        db.migrate()
        Invite.create(email="invited@shop.example")
    try:
        portal = PortalClient(app.test_client())
        assert "by invitation" in portal.get("/signup").get_data(as_text=True)
        refused = signup(portal, email="stranger@shop.example")
        assert refused.status_code == 422 and "ask the operator to invite" in refused.get_data(as_text=True)
        assert signup(portal, email="invited@shop.example").status_code == 303
        assert count(app, User) == 1
    finally:
        db.database.close()


def test_login_with_a_wrong_password_is_refused_and_audited(app, portal, org):
    portal.get("/login")
    response = portal.post("/login", {"email": org.email, "password": "wrong password!"})
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)
    assert portal.get("/developer").status_code == 302  # still logged out
    with app.app_context():
        assert AuditEvent.select().where(AuditEvent.action == "login.failed").count() == 1


@pytest.mark.parametrize("next_url, lands_on", [
    ("/developer", "/developer"),
    ("/developer/apps/app_x?tab=keys", "/developer/apps/app_x?tab=keys"),
    ("https://evil.example/steal", "/"),
    ("//evil.example/steal", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("", "/"),
])
def test_login_follows_next_only_to_this_site(portal, org, next_url, lands_on):
    portal.get("/login")
    response = portal.post("/login", {"email": org.email, "password": PASSWORD, "next": next_url})
    assert response.status_code == 303
    assert response.location == lands_on


def test_a_protected_page_sends_a_visitor_to_log_in_and_back(portal, org):
    response = portal.get("/developer")
    assert response.status_code == 302
    assert response.location == "/login?next=/developer"
    login_page = portal.get(response.location).get_data(as_text=True)
    assert 'name="next" value="/developer"' in login_page
    assert portal.post("/login", {"email": org.email, "password": PASSWORD, "next": "/developer"}).location == "/developer"


def test_login_without_the_csrf_token_is_refused(portal, org):
    portal.get("/login")
    response = portal.post("/login", {"email": org.email, "password": PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert portal.get("/developer").status_code == 302


def test_log_out_ends_the_session(signed_in):
    response = signed_in.post("/logout")
    assert response.status_code == 303 and response.location == "/login"
    assert "You are logged out." in signed_in.get("/login").get_data(as_text=True)
    assert signed_in.get("/developer").status_code == 302


def test_log_out_needs_the_csrf_token(signed_in):
    assert signed_in.post("/logout", csrf=False).status_code == 400
    assert signed_in.get("/developer").status_code == 200


def test_log_out_is_a_post_not_a_link(signed_in):
    assert signed_in.get("/logout").status_code == 405


def test_logging_in_starts_a_fresh_session_with_a_new_csrf_token(portal, org):
    portal.get("/login")
    before = portal.token
    portal.post("/login", {"email": org.email, "password": PASSWORD})
    portal.get("/")
    assert portal.token and portal.token != before


# -- the password policy: argon2's own cost unless configured otherwise ------------------
# Every other test hashes with LOYALTY_PASSWORD_HASHING=fast (see tests/conftest.py).


def _default_cost():
    defaults = argon2.PasswordHasher()
    return (argon2.Type.ID, defaults.time_cost, defaults.memory_cost, defaults.parallelism)


def _cost_of(password_hash: str):
    params = argon2.extract_parameters(password_hash)
    return (params.type, params.time_cost, params.memory_cost, params.parallelism)


def _app_with_the_default_policy(tmp_path, monkeypatch):
    monkeypatch.delenv("LOYALTY_PASSWORD_HASHING", raising=False)
    return create_app({"DATA_DIR": str(tmp_path), "TESTING": True})


def test_by_default_a_sign_up_hashes_the_password_at_argon2s_recommended_cost(tmp_path, monkeypatch):
    app = _app_with_the_default_policy(tmp_path, monkeypatch)
    try:
        with app.app_context():
            db.migrate()
        assert signup(PortalClient(app.test_client())).status_code == 303
        with app.app_context():
            stored = User.get(User.email == "new@shop.example").password_hash
        assert _cost_of(stored) == _default_cost()
    finally:
        db.close_all()


def test_a_cheaply_hashed_password_is_rehashed_at_the_default_cost_on_log_in(tmp_path, monkeypatch):
    cheap = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "PASSWORD_HASHING": "fast"})
    with cheap.app_context():
        db.migrate()
        create_partner_account("Shop", "owner@shop.example", PASSWORD)
        before = User.get().password_hash
    db.close_all()
    assert _cost_of(before) != _default_cost()

    app = _app_with_the_default_policy(tmp_path, monkeypatch)  # the same database
    try:
        PortalClient(app.test_client()).login("owner@shop.example")
        with app.app_context():
            after = User.get().password_hash
        assert after != before and _cost_of(after) == _default_cost()
        PortalClient(app.test_client()).login("owner@shop.example")  # the new hash lets the owner in
    finally:
        db.close_all()
