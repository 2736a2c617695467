"""Account security: server-side sessions (log-out, everywhere, idle), password change,
two-factor authentication with recovery codes, forgotten passwords, and the throttles on
log-in, the code step, reset requests and sign-ups."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pyotp
import pytest
from portal_helpers import PASSWORD, PortalClient

from portal import create_app, db
from portal.models import Attempt, AuditEvent, PasswordReset, RecoveryCode, User, UserSession, utcnow

NEW_PASSWORD = "a brand new passphrase"
_SECRET_RE = re.compile(r'aria-label="Secret key"[^>]*>([^<]+)<')
_CODES_RE = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")
_RESET_RE = re.compile(r"(/reset-password/[A-Za-z0-9_-]+)")


def session_cookie(client) -> str:
    return client.client.get_cookie("session").value


def with_cookie(app, value) -> PortalClient:
    other = PortalClient(app.test_client())
    other.client.set_cookie("session", value)
    return other


def user_row(app, email) -> User:
    with app.app_context():
        return User.get(User.email == email)


def turn_on_two_factor(portal: PortalClient) -> tuple[pyotp.TOTP, list[str]]:
    portal.get("/account")
    page = portal.post("/account/two-factor/setup").get_data(as_text=True)
    totp = pyotp.TOTP(_SECRET_RE.search(page).group(1).replace(" ", ""))
    response = portal.post("/account/two-factor/enable", {"code": totp.now()})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    codes = _CODES_RE.findall(response.get_data(as_text=True))
    assert len(codes) == 10
    return totp, codes


def password_step(portal: PortalClient, email, password=PASSWORD):
    portal.get("/login")
    return portal.post("/login", {"email": email, "password": password})


def next_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step: accepted (within the drift window) after `now()` was used."""
    return totp.generate_otp(totp.timecode(time.time()) + 1)


# -- sessions -------------------------------------------------------------------------------


def test_log_out_ends_the_session_on_the_server_so_a_copied_cookie_is_refused(app, signed_in):
    copied = session_cookie(signed_in)
    assert with_cookie(app, copied).get("/developer").status_code == 200
    signed_in.post("/logout")
    assert with_cookie(app, copied).get("/developer").status_code == 302
    with app.app_context():
        assert UserSession.select().count() == 0


def test_a_session_ends_after_the_idle_hours(app, signed_in):
    with app.app_context():
        UserSession.update(last_seen_at=utcnow() - timedelta(hours=11, minutes=59)).execute()
    assert signed_in.get("/developer").status_code == 200  # and its use is noted
    with app.app_context():
        assert UserSession.get().last_seen_at > utcnow() - timedelta(minutes=1)
        UserSession.update(last_seen_at=utcnow() - timedelta(hours=12, minutes=1)).execute()
    assert signed_in.get("/developer").status_code == 302


def test_the_idle_hours_are_configurable_and_checked(tmp_path):
    from portal.config import ConfigError, load_settings

    assert load_settings({"DATA_DIR": str(tmp_path), "SESSION_IDLE_HOURS": "2"}).session_idle_hours == 2
    for bad in ("0", "-1", "1.5", "many"):
        with pytest.raises(ConfigError, match="LOYALTY_SESSION_IDLE_HOURS"):
            load_settings({"DATA_DIR": str(tmp_path), "SESSION_IDLE_HOURS": bad})


def test_log_out_everywhere_ends_every_session_of_the_user_only(app, org, other_org, signed_in):
    laptop = PortalClient(app.test_client())
    laptop.login(org.email)
    rival = PortalClient(app.test_client())
    rival.login(other_org.email)
    assert "2 browsers or devices" in signed_in.get("/account").get_data(as_text=True)
    response = signed_in.post("/account/sessions/end")
    assert response.status_code == 303 and response.location == "/login"
    assert signed_in.get("/developer").status_code == 302
    assert laptop.get("/developer").status_code == 302
    assert rival.get("/developer").status_code == 200


def test_logging_in_again_replaces_the_session_id(app, org, portal):
    portal.login(org.email)
    first = session_cookie(portal)
    portal.login(org.email)
    assert with_cookie(app, first).get("/developer").status_code == 302
    assert portal.get("/developer").status_code == 200


# -- password change ------------------------------------------------------------------------


def test_changing_the_password_keeps_this_browser_and_ends_the_others(app, org, signed_in):
    other = PortalClient(app.test_client())
    other.login(org.email)
    signed_in.get("/account")
    wrong = signed_in.post("/account/password", {"current_password": "not my password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422 and "current password is not correct" in wrong.get_data(as_text=True)
    short = signed_in.post("/account/password", {"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    assert other.get("/developer").status_code == 200  # nothing changed yet

    done = signed_in.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert done.status_code == 303
    assert "Your password is changed" in signed_in.get("/account").get_data(as_text=True)
    assert other.get("/developer").status_code == 302
    fresh = PortalClient(app.test_client())
    assert password_step(fresh, org.email).status_code == 401
    assert password_step(fresh, org.email, NEW_PASSWORD).status_code == 303
    with app.app_context():
        assert AuditEvent.select().where(AuditEvent.action == "password.changed").count() == 1


def test_a_password_change_over_htmx_reloads_the_page(signed_in):
    signed_in.get("/account")
    response = signed_in.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                              htmx=True)
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/account"


# -- two-factor authentication -------------------------------------------------------------


def test_two_factor_set_up_then_log_in_with_a_code_and_a_recovery_code(app, org, signed_in):
    totp, codes = turn_on_two_factor(signed_in)
    assert codes[0] not in signed_in.get("/account").get_data(as_text=True)  # shown once
    with app.app_context():
        hashes = [row.code_hash for row in RecoveryCode.select()]
        assert len(hashes) == 10 and not set(codes) & set(hashes)
        assert "2fa.enabled" in [e.action for e in AuditEvent.select()]
        assert totp.secret not in (User.get_by_id(org.user_id).totp_secret or "")  # encrypted at rest
    signed_in.post("/logout")

    # The password alone signs nobody in.
    step = password_step(signed_in, org.email)
    assert step.status_code == 303 and step.location == "/login/code"
    assert signed_in.get("/developer").status_code == 302
    assert "Authentication code" in signed_in.get("/login/code").get_data(as_text=True)
    wrong = signed_in.post("/login/code", {"code": "123456"})
    assert wrong.status_code == 401 and "does not match" in wrong.get_data(as_text=True)
    assert signed_in.post("/login/code", {"code": next_code(totp)}).status_code == 303
    assert signed_in.get("/developer").status_code == 200
    signed_in.post("/logout")

    # The same code again is refused (replay), a recovery code works once.
    password_step(signed_in, org.email)
    assert signed_in.post("/login/code", {"code": next_code(totp)}).status_code == 401
    used = signed_in.post("/login/code", {"code": codes[3].upper().replace("-", " ")})
    assert used.status_code == 303
    assert "You used a recovery code; 9 left" in signed_in.get("/").get_data(as_text=True)
    signed_in.post("/logout")
    password_step(signed_in, org.email)
    again = signed_in.post("/login/code", {"code": codes[3]})
    assert again.status_code == 401
    with app.app_context():
        assert AuditEvent.select().where(AuditEvent.action == "2fa.failed").count() == 3


def test_the_password_step_marker_expires_and_never_signs_in(app, org, signed_in):
    turn_on_two_factor(signed_in)
    signed_in.post("/logout")
    password_step(signed_in, org.email)
    with signed_in.client.session_transaction() as session:
        session["pending_2fa"]["until"] = int(time.time()) - 1
        session.modified = True
    response = signed_in.post("/login/code", {"code": "123456"})
    assert response.status_code == 303 and response.location == "/login"
    assert signed_in.get("/login/code").location == "/login"


def test_a_wrong_set_up_code_leaves_two_factor_off(app, org, signed_in):
    signed_in.get("/account")
    signed_in.post("/account/two-factor/setup")
    response = signed_in.post("/account/two-factor/enable", {"code": "000000"})
    assert response.status_code == 422 and "does not match" in response.get_data(as_text=True)
    assert not user_row(app, org.email).has_two_factor
    signed_in.post("/logout")
    assert password_step(signed_in, org.email).location == "/"  # no code asked


def test_turning_two_factor_off_needs_a_current_code(app, org, signed_in):
    totp, codes = turn_on_two_factor(signed_in)
    refused = signed_in.post("/account/two-factor/disable", {"code": "000000"})
    assert refused.status_code == 422 and user_row(app, org.email).has_two_factor
    assert signed_in.post("/account/two-factor/disable", {"code": next_code(totp)}).status_code == 200
    assert not user_row(app, org.email).has_two_factor
    with app.app_context():
        assert RecoveryCode.select().count() == 0 and User.get_by_id(org.user_id).totp_secret is None


def test_new_recovery_codes_replace_the_old_ones(app, org, signed_in):
    totp, old = turn_on_two_factor(signed_in)
    response = signed_in.post("/account/two-factor/recovery-codes", {"code": next_code(totp)})
    new = _CODES_RE.findall(response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    signed_in.post("/logout")
    password_step(signed_in, org.email)
    assert signed_in.post("/login/code", {"code": old[0]}).status_code == 401
    assert signed_in.post("/login/code", {"code": new[0]}).status_code == 303


# -- forgotten password ---------------------------------------------------------------------


def reset_links(caplog, wait=2.0) -> list[str]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = _RESET_RE.findall(caplog.text)
        if found:
            return found
        time.sleep(0.02)
    return []


def test_a_reset_link_answers_the_same_for_unknown_emails_and_works_once(app, org, portal, caplog):
    caplog.set_level(logging.INFO, logger="portal.mail")
    portal.get("/forgot-password")
    unknown = portal.post("/forgot-password", {"email": "nobody@bakery.example"})
    known = portal.post("/forgot-password", {"email": org.email.upper()})
    assert unknown.status_code == known.status_code == 303 and unknown.location == known.location
    sent = portal.get(known.location).get_data(as_text=True)
    assert "If an account exists for that address" in sent
    links = reset_links(caplog)
    assert len(links) == 1 and "nobody@" not in caplog.text
    other = PortalClient(app.test_client())
    other.login(org.email)

    page = portal.get(links[0])
    assert page.status_code == 200 and "New password" in page.get_data(as_text=True)
    short = portal.post(links[0], {"new_password": "short"})
    assert short.status_code == 422
    done = portal.post(links[0], {"new_password": NEW_PASSWORD})
    assert done.status_code == 303 and done.location == "/login"
    assert other.get("/developer").status_code == 302  # every session ended
    reused = portal.get(links[0])
    assert reused.status_code == 410 and "used already" in reused.get_data(as_text=True)
    assert password_step(PortalClient(app.test_client()), org.email, NEW_PASSWORD).status_code == 303


def test_an_expired_or_forged_reset_link_is_refused_and_changes_nothing(app, org, portal, caplog):
    caplog.set_level(logging.INFO, logger="portal.mail")
    portal.get("/forgot-password")
    portal.post("/forgot-password", {"email": org.email})
    (link,) = reset_links(caplog)
    forged = portal.post(link[:-3] + "xyz", {"new_password": NEW_PASSWORD})
    assert forged.status_code == 404 and "not valid" in forged.get_data(as_text=True)
    with app.app_context():
        PasswordReset.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    expired = portal.post(link, {"new_password": NEW_PASSWORD})
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert password_step(PortalClient(app.test_client()), org.email).status_code == 303  # old password works


def test_a_reset_still_asks_for_the_second_factor(app, org, signed_in, caplog):
    caplog.set_level(logging.INFO, logger="portal.mail")
    turn_on_two_factor(signed_in)
    signed_in.post("/logout")
    signed_in.get("/forgot-password")
    signed_in.post("/forgot-password", {"email": org.email})
    (link,) = reset_links(caplog)
    signed_in.get(link)
    signed_in.post(link, {"new_password": NEW_PASSWORD})
    assert password_step(signed_in, org.email, NEW_PASSWORD).location == "/login/code"


def test_reset_links_are_built_from_the_public_url_when_it_is_set(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="portal.mail")
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "PUBLIC_URL": "https://partners.example.com/",
                      "PASSWORD_HASHING": "fast"})
    with app.app_context():
        db.migrate()
        from portal_helpers import make_org

    org = make_org(app, "owner@bakery.example")
    try:
        portal = PortalClient(app.test_client())
        portal.get("/forgot-password", headers={"Host": "evil.example"})
        portal.post("/forgot-password", {"email": org.email}, headers={"Host": "evil.example"})
        reset_links(caplog)
        assert "https://partners.example.com/reset-password/" in caplog.text and "evil.example" not in caplog.text
    finally:
        db.close_all()


# -- throttling -----------------------------------------------------------------------------


def test_five_failed_log_ins_for_an_email_answer_429_even_with_the_right_password(app, org, portal):
    for attempt in range(5):
        assert password_step(portal, org.email, f"wrong guess {attempt}").status_code == 401
    refused = password_step(portal, org.email)
    assert refused.status_code == 429
    assert 800 < int(refused.headers["Retry-After"]) <= 900
    assert "Too many failed log-ins for this email. Try again in 15 minutes." in refused.get_data(as_text=True)
    assert portal.get("/developer").status_code == 302
    with app.app_context():
        Attempt.update(created_at=utcnow() - timedelta(minutes=16)).execute()
    assert password_step(portal, org.email).status_code == 303


def test_a_successful_log_in_clears_the_emails_failures(org, portal):
    for attempt in range(4):
        password_step(portal, org.email, f"wrong guess {attempt}")
    assert password_step(portal, org.email).status_code == 303
    portal.get("/")
    portal.post("/logout")
    for attempt in range(4):
        assert password_step(portal, org.email, f"wrong again {attempt}").status_code == 401


def test_thirty_failed_log_ins_from_one_address_answer_429(org, portal):
    for n in range(30):
        assert password_step(portal, f"guess{n}@bakery.example", "wrong guess").status_code == 401
    refused = password_step(portal, org.email)
    assert refused.status_code == 429 and "from your network" in refused.get_data(as_text=True)
    assert "Retry-After" in refused.headers


def test_five_wrong_codes_at_the_second_step_answer_429(app, org, signed_in):
    totp, _ = turn_on_two_factor(signed_in)
    signed_in.post("/logout")
    password_step(signed_in, org.email)
    for _ in range(5):
        assert signed_in.post("/login/code", {"code": "000000"}).status_code == 401
    refused = signed_in.post("/login/code", {"code": next_code(totp)})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Too many wrong authentication codes" in refused.get_data(as_text=True)
    assert signed_in.get("/developer").status_code == 302


def test_reset_requests_are_throttled_alike_for_known_and_unknown_emails(org, portal):
    portal.get("/forgot-password")
    for email in (org.email, "nobody@bakery.example"):
        for _ in range(5):
            assert portal.post("/forgot-password", {"email": email}).status_code == 303
        refused = portal.post("/forgot-password", {"email": email})
        assert refused.status_code == 429 and "Too many reset links" in refused.get_data(as_text=True)


def test_sign_ups_from_one_address_are_throttled(app, portal):
    portal.get("/signup")
    for n in range(30):
        portal.post("/signup", {"business_name": "Shop", "email": f"shop{n}@example.com", "password": "short"})
    refused = portal.post("/signup", {"business_name": "Shop", "email": "last@example.com", "password": PASSWORD})
    assert refused.status_code == 429 and "Too many sign-ups" in refused.get_data(as_text=True)
    with app.app_context():
        assert User.select().count() == 0
