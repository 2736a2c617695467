"""Teams and account security in a real browser against the real server: invite → join →
what a developer and a viewer may do; two-factor set-up and log-in with a code and with a
recovery code; a forgotten password through the console link; an old cookie refused after
"Log out"; the log-in throttle holding across two server processes; the team and
two-factor forms without JavaScript."""

from __future__ import annotations

import re
import secrets
import time

import pyotp
import pytest
import requests
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.e2e.test_journeys import PASSWORD, create_application, sign_up

pytestmark = pytest.mark.browser

JOINER_PASSWORD = "a joiner's long passphrase"
# "Log out" is also the start of "Log out everywhere" (the Account page has both, as the
# design names them), so the sidebar button is found by its exact name.


def invite(page: Page, email: str, role: str) -> str:
    """Invite `email` as `role` from the Team page; returns the link shown once."""
    page.get_by_role("link", name="Team").click()
    page.get_by_role("button", name="Invite teammate").click()
    form = page.get_by_role("region", name="Invite teammate")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Role").select_option(label=role)
    form.get_by_role("button", name="Send invite").click()
    link = page.get_by_label("Invite link")
    expect(link).to_contain_text("/invite/")
    return link.inner_text()


def join(browser, live_server, link: str, *, javascript: bool = True) -> Page:
    """A new browser (own cookies) that opens the invite link and joins."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=javascript)
    context.set_default_timeout(10_000)
    joiner = context.new_page()
    joiner.goto(link)
    joiner.get_by_label("Password").fill(JOINER_PASSWORD)
    joiner.get_by_role("button", name="Join team").click()
    expect(joiner.get_by_role("button", name="Log out", exact=True)).to_be_visible()
    return joiner


def member_row(page: Page, email: str):
    return page.get_by_role("row").filter(has_text=email)


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_invite_join_and_what_a_developer_and_a_viewer_may_do(page: Page, browser, live_server):
    sign_up(page)
    app_id = create_application(page)
    tag = secrets.token_hex(3)
    dev_email, viewer_email = f"dev-{tag}@bakery.example", f"viewer-{tag}@bakery.example"
    dev_link = invite(page, dev_email, "Developer")
    viewer_link = invite(page, viewer_email, "Viewer")
    page.reload()
    expect(page.get_by_role("region", name="Pending invites")).to_contain_text(dev_email)
    assert dev_link not in page.content() and viewer_link not in page.content()  # shown once

    developer = join(browser, live_server, dev_link)
    expect(developer.get_by_role("status")).to_contain_text("You joined as Developer")
    nav = developer.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Program")).to_have_count(0)
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    developer.goto(f"/developer/apps/{app_id}")
    expect(developer.get_by_role("button", name="Regenerate secret")).to_have_count(0)
    developer.get_by_role("button", name="Create API key").click()
    expect(developer.get_by_role("radio", name="Production")).to_have_count(0)
    developer.get_by_label("Key name").fill("CI")
    developer.get_by_label("stamps_read", exact=True).check()
    developer.get_by_role("button", name="Create key").click()
    expect(developer.get_by_label("New API key")).to_have_value(re.compile(r"^test_sk_"))

    viewer = join(browser, live_server, viewer_link)
    viewer.goto(f"/developer/apps/{app_id}")
    expect(viewer.get_by_text("CI", exact=True)).to_be_visible()  # key metadata, never a key
    for control in ("Create API key", "Roll", "Revoke", "Regenerate secret"):
        expect(viewer.get_by_role("button", name=control)).to_have_count(0)
    viewer.get_by_role("link", name="Team").click()
    expect(viewer.get_by_role("button", name="Invite teammate")).to_have_count(0)

    used = viewer.context.new_page()
    used.goto(viewer_link)
    expect(used.get_by_text("has been used already")).to_be_visible()

    # The owner promotes the viewer and removes the developer, whose open page is signed out.
    page.get_by_role("link", name="Team").click()
    row = member_row(page, viewer_email)
    row.get_by_label("Role").select_option(label="Admin")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(f"{viewer_email} is now Admin")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    member_row(page, dev_email).get_by_role("button", name="Remove").click()
    expect(member_row(page, dev_email)).to_have_count(0)
    assert dialogs and dev_email in dialogs[0]
    developer.reload()
    expect(developer.get_by_role("button", name="Log in")).to_be_visible()
    viewer.reload()
    expect(viewer.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log")).to_be_visible()
    assert page.console_errors == []
    for other in (developer, viewer):
        other.context.close()


def test_two_factor_set_up_then_log_in_with_a_code_and_with_a_recovery_code(page: Page):
    email = sign_up(page)
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Set up two-factor authentication").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    totp = pyotp.TOTP(page.get_by_label("Secret key").inner_text().replace(" ", ""))
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_label("Recovery codes").get_by_role("listitem")).to_have_count(10)
    codes = page.get_by_label("Recovery codes").get_by_role("listitem").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes)
    page.reload()
    expect(page.get_by_label("Recovery codes")).to_have_count(0)  # shown once
    expect(page.get_by_text("You have 10 unused recovery codes")).to_be_visible()

    page.get_by_role("button", name="Log out", exact=True).click()
    log_in(page, email)
    expect(page).to_have_url(re.compile(r"/login/code$"))
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match")
    page.get_by_label("Authentication code").fill(totp.generate_otp(totp.timecode(time.time()) + 1))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()

    page.get_by_role("button", name="Log out", exact=True).click()
    log_in(page, email)
    page.get_by_label("Authentication code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("status")).to_contain_text("You used a recovery code; 9 left")
    page.get_by_role("button", name="Log out", exact=True).click()
    log_in(page, email)
    page.get_by_label("Authentication code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("used already")
    # The refused codes answered 401 (which the browser notes); nothing else complained —
    # the inline SVG QR code kept within the strict Content-Security-Policy.
    assert [e for e in page.console_errors if "status of 401" not in e] == []


def test_a_forgotten_password_is_reset_through_the_link_on_the_server_console(page: Page, live_server):
    email = sign_up(page)
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_text("If an account exists for that address")).to_be_visible()
    link = None
    deadline = time.monotonic() + 5
    while link is None and time.monotonic() < deadline:
        found = re.findall(rf"mail to {re.escape(email)}: .*?(http://\S+/reset-password/[A-Za-z0-9_-]+)",
                           live_server.log_text)
        link = found[-1] if found else None
        time.sleep(0.05)
    assert link, "no reset link on the server console"
    page.goto(link)
    page.get_by_label("New password").fill("a freshly chosen passphrase")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your new password is set")
    log_in(page, email, "a freshly chosen passphrase")
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
    page.goto(link)
    expect(page.get_by_text("has been used already")).to_be_visible()


def test_log_out_ends_the_session_so_the_old_cookie_is_refused(page: Page, browser, live_server):
    sign_up(page)
    old_cookies = page.context.cookies()
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    replay = browser.new_context(base_url=live_server.url)
    try:
        replay.add_cookies(old_cookies)
        other = replay.new_page()
        other.goto("/developer")
        expect(other).to_have_url(re.compile(r"/login\?next=/developer$"))
        expect(other.get_by_role("button", name="Log in")).to_be_visible()
    finally:
        replay.close()


@pytest.fixture
def two_servers(tmp_path_factory):
    """Two server processes on one data dir (one SQLite file, one session key)."""
    data_dir = tmp_path_factory.mktemp("two-servers")
    first = LiveServer(data_dir).start()
    second = LiveServer(data_dir).start()
    yield first, second
    first.stop()
    second.stop()


def test_the_log_in_throttle_holds_across_two_server_processes(browser, two_servers):
    first, second = two_servers
    demo = first.demo()
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        for attempt in range(6):
            server = (first, second)[attempt % 2]
            page.goto(server.url + "/login")
            page.get_by_label("Email").fill(demo["email"])
            page.get_by_label("Password").fill(f"wrong guess {attempt}" if attempt < 5 else demo["password"])
            with page.expect_response(lambda r: r.request.method == "POST") as answer:
                page.get_by_role("button", name="Log in").click()
            status = answer.value.status
            assert status == (401 if attempt < 5 else 429), (attempt, server.url, status)
        assert 800 < int(answer.value.headers["retry-after"]) <= 900
        expect(page.get_by_role("alert")).to_have_text(
            "Too many failed log-ins for this email. Try again in 15 minutes.")
        # The other process refuses too, without looking at the password.
        direct = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', direct.get(first.url + "/login").text).group(1)
        refused = direct.post(first.url + "/login", data={"email": demo["email"], "password": demo["password"],
                                                         "csrf_token": token}, allow_redirects=False)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
    finally:
        context.close()


def test_team_and_two_factor_forms_work_without_javascript(no_js_page: Page, browser, live_server):
    page = no_js_page
    sign_up(page)
    email = f"viewer-{secrets.token_hex(3)}@bakery.example"
    link = invite(page, email, "Viewer")
    joiner = join(browser, live_server, link, javascript=False)
    joiner.context.close()

    page.get_by_role("link", name="Team").click()
    member_row(page, email).get_by_role("button", name="Remove").click()
    expect(page.get_by_role("heading", name=f"Remove {email}?")).to_be_visible()  # asks first
    page.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("was removed from the team")
    expect(member_row(page, email)).to_have_count(0)

    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Set up two-factor authentication").click()
    totp = pyotp.TOTP(page.get_by_label("Secret key").inner_text().replace(" ", ""))
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_label("Recovery codes").get_by_role("listitem")).to_have_count(10)
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
