"""Partners' journeys through the portal in a real browser, against the real server."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "a long enough passphrase"
KEY_RE = re.compile(r"^test_sk_[A-Za-z0-9]{38}$")


def masked(key: str) -> str:
    return f"{key[:8]}{key[8:12]}…{key[-4:]}"


def sign_up(page: Page) -> str:
    email = f"owner-{secrets.token_hex(4)}@bakery.example"
    page.goto("/signup")
    page.get_by_label("Business name").fill("Corner Bakery")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return email


def create_application(page: Page, name: str = "Web shop") -> str:
    page.get_by_role("link", name="Developer").click()
    page.get_by_role("button", name="New application").click()
    page.get_by_label("Application name").fill(name)
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    return page.get_by_label("App ID").inner_text()


def create_test_key(page: Page, name: str, scopes: tuple[str, ...]) -> str:
    page.get_by_role("button", name="Create API key").click()
    page.get_by_label("Key name").fill(name)
    page.get_by_role("radio", name="Test").check()
    for scope in scopes:
        page.get_by_label(scope, exact=True).check()
    page.get_by_label("Expires").select_option(label="90 days")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("New API key")
    expect(new_key).to_have_value(KEY_RE)
    return new_key.input_value()


def key_row(page: Page, key: str):
    return page.get_by_role("row").filter(has_text=masked(key))


def test_sign_up_create_app_and_key_copy_roll_and_revoke(page: Page, live_server):
    sign_up(page)
    app_id = create_application(page)
    assert re.fullmatch(r"app_[a-z0-9]{16}", app_id)
    expect(page).to_have_url(re.compile(rf"/developer/apps/{app_id}$"))
    secret = page.get_by_label("App Secret").input_value()
    assert re.fullmatch(r"secret_[A-Za-z0-9]{32}", secret)

    key = create_test_key(page, "Checkout server", ("stamps_read", "stamps_write"))
    # The new key takes the focus, selected, ready to copy with the keyboard too.
    expect(page.get_by_label("New API key")).to_be_focused()
    assert page.evaluate("String(getSelection())") == key
    # Creating the key took the App Secret off the screen: one secret shown at a time.
    expect(page.get_by_label("App Secret")).to_have_count(0)
    row = key_row(page, key)
    expect(row).to_contain_text("Checkout server")
    expect(row).to_contain_text("stamps_read")
    expect(row).to_contain_text("stamps_write")
    expect(row).to_contain_text("Test")
    expect(row).to_contain_text("Never used")

    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key

    key_row(page, key).get_by_role("button", name="Roll").click()
    page.get_by_label("Old key expires").select_option(label="1 hour")
    page.get_by_role("button", name="Roll key").click()
    expect(page.get_by_text("the old key expires in 1 hour")).to_be_visible()
    new_key = page.get_by_label("New API key").input_value()
    assert KEY_RE.match(new_key) and new_key != key
    expect(key_row(page, new_key)).to_contain_text("stamps_write")
    expect(key_row(page, key)).to_contain_text("Expires in 1 day")  # DESIGN §13: within 7 days

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    key_row(page, key).get_by_role("button", name="Revoke").click()
    expect(key_row(page, key)).to_contain_text("Revoked")
    assert dialogs and "Revoke" in dialogs[0]
    expect(key_row(page, key).get_by_role("button", name="Revoke")).to_have_count(0)
    # The row was swapped in place: the replacement key is still on screen.
    expect(page.get_by_label("New API key")).to_have_value(new_key)
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(key_row(page, new_key)).to_contain_text("Active")

    page.reload()
    expect(key_row(page, key)).to_contain_text("Revoked")
    content = page.content()
    assert new_key not in content and key not in content and secret not in content
    assert page.console_errors == []


def test_dismissing_the_revoke_dialog_keeps_the_key(page: Page):
    sign_up(page)
    create_application(page)
    key = create_test_key(page, "Till", ("card_read",))
    page.on("dialog", lambda dialog: dialog.dismiss())
    key_row(page, key).get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(300)
    page.reload()
    expect(key_row(page, key)).to_contain_text("Active")


def test_the_whole_journey_works_without_javascript(no_js_page: Page):
    page = no_js_page
    sign_up(page)
    app_id = create_application(page, "Till app")
    assert page.get_by_label("App Secret").input_value().startswith("secret_")

    key = create_test_key(page, "Till", ("stamps_read", "stamps_write"))
    expect(key_row(page, key)).to_contain_text("stamps_write")

    key_row(page, key).get_by_role("button", name="Roll").click()
    page.get_by_label("Old key expires").select_option(label="Now")
    page.get_by_role("button", name="Roll key").click()
    new_key = page.get_by_label("New API key").input_value()
    assert KEY_RE.match(new_key) and new_key != key
    expect(key_row(page, key)).to_contain_text("Expired")

    key_row(page, new_key).get_by_role("button", name="Revoke").click()
    expect(page).to_have_url(re.compile(rf"/developer/apps/{app_id}"))
    expect(key_row(page, new_key)).to_contain_text("Revoked")
    expect(page.get_by_role("status")).to_contain_text("revoked")
    assert new_key not in page.content()

    page.get_by_role("button", name="Regenerate secret").click()
    new_secret = page.get_by_label("App Secret").input_value()
    assert new_secret.startswith("secret_")
    expect(page.get_by_text("keeps working until")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_an_expired_session_sends_an_htmx_click_to_the_login_page(page: Page):
    sign_up(page)
    app_id = create_application(page)
    page.goto(f"/developer/apps/{app_id}")
    page.context.clear_cookies()
    page.get_by_role("button", name="Create API key").click()
    expect(page).to_have_url(re.compile(rf"/login\?next=/developer/apps/{app_id}$"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_log_in_returns_to_the_page_asked_for(page: Page):
    email = sign_up(page)
    app_id = create_application(page)
    page.get_by_role("button", name="Log out").click()
    page.goto(f"/developer/apps/{app_id}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/developer/apps/{app_id}$"))
    expect(page.get_by_label("App ID")).to_have_text(app_id)


def test_the_phone_layout_keeps_every_control_reachable(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_up(page)
        create_application(page)
        key = create_test_key(page, "Phone", ("member_read",))
        expect(key_row(page, key).get_by_role("button", name="Revoke")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_credentials_made_in_the_browser_work_with_the_sdk(page: Page, live_server):
    loyalty_sdk = pytest.importorskip("loyalty_sdk")
    sign_up(page)
    app_id = create_application(page)
    secret = page.get_by_label("App Secret").input_value()
    key = create_test_key(page, "SDK check", ("stamps_read", "card_read"))
    client = loyalty_sdk.LoyaltyClient(app_id=app_id, app_secret=secret, api_key=key, base_url=live_server.url)
    info = client.key_info()
    assert (info.app_id, info.mode, info.name) == (app_id, "test", "SDK check")
    assert sorted(info.scopes) == ["card_read", "stamps_read"]
    page.reload()
    expect(key_row(page, key)).not_to_contain_text("Never used")  # "Last used" moved


def test_regenerating_the_secret_shows_the_new_one_once_and_states_the_grace_period(page: Page):
    sign_up(page)
    create_application(page)
    first = page.get_by_label("App Secret").input_value()
    key = create_test_key(page, "Till", ("card_read",))
    expect(page.get_by_text("previous secret stays valid for 24 hours")).to_be_visible()
    page.get_by_role("button", name="Regenerate secret").click()
    expect(page.get_by_role("status")).to_contain_text("keeps working for 24 hours")
    second = page.get_by_label("App Secret").input_value()
    assert second.startswith("secret_") and second != first
    expect(page.get_by_label("New API key")).to_have_count(0)  # one secret on screen at a time
    expect(page.get_by_text(f"secret_…{first[-4:]}")).to_be_visible()
    expect(page.get_by_text("keeps working until")).to_be_visible()
    page.reload()
    assert second not in page.content() and key not in page.content()
