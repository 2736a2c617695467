"""Screenshots of every portal page at laptop and phone width, for a person to look at.

    python3 tests/e2e/take_screenshots.py [/tmp/screens]

Not a test (nothing is asserted): it starts its own server on a temporary data dir.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import portal  # noqa: F401  (imported before tests/ joins sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LiveServer

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WIDTHS = {"laptop": (1280, 860), "phone": (390, 844)}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server = LiveServer(Path(tempfile.mkdtemp())).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for label, (width, height) in WIDTHS.items():
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()

                def shot(name: str, target=None) -> None:
                    target = target or page
                    target.wait_for_load_state()
                    overflow = target.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    if overflow > 0:
                        print(f"{name}-{label}: wider than the window by {overflow}px")
                    # A table that scrolls inside its frame hides its last column until scrolled.
                    for frame, extra in target.evaluate(
                            "[...document.querySelectorAll('.table-wrap')].filter(e => e.scrollWidth > e.clientWidth)"
                            ".map(e => [e.className || e.tagName, e.scrollWidth - e.clientWidth])"):
                        print(f"{name}-{label}: {frame} wider than its frame by {extra}px")
                    target.screenshot(path=str(out / f"{name}-{label}.png"), full_page=True)
                    # Tall phone pages are also cut into screen-sized parts, easier to read.
                    total = target.evaluate("document.documentElement.scrollHeight")
                    for part, top in enumerate(range(0, total, height) if total > height * 1.5 else []):
                        target.screenshot(path=str(out / f"{name}-{label}-part{part + 1}.png"), full_page=True,
                                          clip={"x": 0, "y": top, "width": width, "height": min(height, total - top)})

                page.goto(server.url + "/signup")
                shot("01-signup")
                page.get_by_label("Business name").fill("Corner Bakery")
                page.get_by_label("Email").fill(f"owner-{label}@example.com")
                page.get_by_label("Password").fill("short")
                page.get_by_role("button", name="Create account").click()
                shot("02-signup-error")
                page.get_by_label("Password").fill("a long enough passphrase")
                page.get_by_role("button", name="Create account").click()
                shot("03-home-empty")
                page.get_by_role("link", name="Developer").click()
                shot("04-applications-empty")
                page.get_by_role("button", name="New application").click()
                page.get_by_label("Application name").wait_for()
                shot("05-new-application")
                page.get_by_label("Application name").fill("Web shop")
                page.get_by_role("button", name="Create application").click()
                page.get_by_label("App Secret").wait_for()
                shot("06-application-secret")
                page.get_by_role("button", name="Create API key").click()
                page.get_by_label("Key name").wait_for()
                shot("07-key-form")
                page.get_by_role("button", name="Create key").click()
                page.get_by_text("Enter a key name").wait_for()
                shot("08-key-form-errors")
                page.get_by_label("Key name").fill("Checkout server")
                page.get_by_label("stamps_read").check()
                page.get_by_label("stamps_write").check()
                page.get_by_label("Expires").select_option(label="90 days")
                page.get_by_role("button", name="Create key").click()
                page.get_by_text("created. Copy it now").wait_for()
                shot("09-new-key")
                page.get_by_role("button", name="Roll").first.click()
                page.get_by_label("Old key expires").wait_for()
                shot("10-roll-form")
                page.get_by_role("button", name="Roll key").click()
                page.get_by_text("rolled. Copy the new key now").wait_for()
                shot("11-rolled")
                page.reload()
                shot("12-application-reloaded")
                page.get_by_role("link", name="Developer").click()
                shot("13-applications")
                page.get_by_role("link", name="Home").click()
                shot("14-home")
                page.get_by_role("link", name="Docs", exact=True).click()
                shot("15-docs")
                for path, name in (("/program", "15b-program"), ("/docs/api", "15c-api-docs")):
                    page.goto(server.url + path)  # other areas, in our layout
                    shot(name)
                page.goto(server.url + "/developer/apps/app_doesnotexist0000")
                shot("16-not-found")
                page.get_by_role("button", name="Log out").click()
                page.get_by_role("button", name="Log in").wait_for()
                shot("17-login")
                page.goto(server.url + "/no/such/page")
                shot("18-not-found-logged-out")
                team_and_security(browser, page, server, shot, label, width, height)
                new_pages(browser, server, shot, label, width, height)
                page.context.close()
            browser.close()
    finally:
        server.stop()
    print(f"screenshots in {out}")


def team_and_security(browser, page, server, shot, label, width, height) -> None:
    """The Team, Account and Audit log pages, joining a team, the two-factor log-in step
    and the forgotten-password pages."""
    import re

    import pyotp

    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(f"owner-{label}@example.com")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Team").click()
    shot("20-team")
    page.get_by_role("button", name="Invite teammate").click()
    invite = page.get_by_role("region", name="Invite teammate")
    invite.get_by_label("Email").wait_for()
    shot("21-invite-form")
    invite.get_by_label("Email").fill(f"developer-{label}@example.com")
    invite.get_by_label("Role").select_option(label="Developer")
    page.get_by_role("button", name="Send invite").click()
    link = page.get_by_label("Invite link").inner_text()
    shot("22-invite-link")
    page.get_by_role("link", name="Team").click()
    shot("22b-team-with-invite")
    joiner = browser.new_context(viewport={"width": width, "height": height}).new_page()
    joiner.goto(link)
    shot("23-join", joiner)
    joiner.get_by_label("Password").fill("another long passphrase")
    joiner.get_by_role("button", name="Join team").click()
    joiner.get_by_role("link", name="Team").click()
    shot("24-team-as-developer", joiner)
    joiner.context.close()
    # Without JavaScript, "Remove" asks on a page of its own (the no-JS owner is the same user).
    no_js = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=False)
    no_js.add_cookies(page.context.cookies())
    plain = no_js.new_page()
    plain.goto(server.url + "/team")
    plain.get_by_role("row").filter(has_text=f"developer-{label}@").get_by_role("button", name="Remove").click()
    shot("25a-remove-confirm-no-js", plain)
    no_js.close()
    page.reload()
    shot("25-team-two-members")
    page.get_by_role("link", name="Account").click()
    shot("26-account")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.get_by_label("Secret key").inner_text().replace(" ", "")
    shot("27-two-factor-setup")
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    page.get_by_label("Recovery codes").wait_for()
    shot("28-recovery-codes")
    page.reload()
    shot("29-two-factor-on")
    page.get_by_role("link", name="Audit log").click()
    shot("30-audit-log")
    email = page.locator(".account-email").inner_text()
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Authentication code").wait_for()
    shot("31-login-code")
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    shot("32-login-code-wrong")
    page.goto(server.url + "/login")
    page.get_by_role("link", name="Forgot password?").click()
    shot("33-forgot")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send reset link").click()
    shot("34-forgot-sent")
    for _ in range(50):
        found = re.findall(r"(http://\S+/reset-password/[A-Za-z0-9_-]+)", server.log_text)
        if found:
            break
        page.wait_for_timeout(100)
    page.goto(found[-1])
    shot("35-reset")
    page.goto(server.url + "/reset-password/not-a-real-token")
    shot("36-reset-invalid")
    for attempt in range(6):
        page.goto(server.url + "/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(f"wrong guess {attempt}")
        page.get_by_role("button", name="Log in").click()
    shot("37-login-throttled")


def new_pages(browser, server, shot, label, width, height) -> None:
    """The request log, usage chart, webhooks, key guardrails and the operator console."""
    import requests
    from loyalty_sdk import sign

    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(server.url + "/signup")
    page.get_by_label("Business name").fill("Harbour Coffee")
    page.get_by_label("Email").fill(f"coffee-{label}@example.com")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("link", name="Developer").click()
    page.get_by_role("button", name="New application").click()
    page.get_by_label("Application name").fill("Till")
    page.get_by_role("button", name="Create application").click()
    app_id = page.get_by_label("App ID").inner_text()
    secret = page.get_by_label("App Secret").input_value()
    app_url = page.url
    page.get_by_role("button", name="Create API key").click()
    page.get_by_label("Key name").fill("Counter tablet")
    for scope in ("stamps_read", "member_read", "card_read"):
        page.get_by_label(scope, exact=True).check()
    page.get_by_label("Allowed IPs").fill("127.0.0.1\n::1")
    page.get_by_label("Requests per minute").fill("100")
    shot("40-key-form-guardrails", page)
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key").input_value()

    def call(path: str, app_secret: str = secret) -> None:
        headers = sign("GET", path, b"", app_id=app_id, app_secret=app_secret)
        requests.get(server.url + path, headers={**headers, "Authorization": f"Bearer {key}"}, timeout=10)

    for path in ("/v1/key", "/v1/members?limit=5", "/v1/key", "/v1/members?limit=2&email=a%40b.example"):
        call(path)
    call("/v1/members?limit=5&email=a%40b.example", "secret_" + "w" * 40)
    page.get_by_role("link", name="Request log").first.click()
    for _ in range(50):  # the log is written just after the answer
        if page.get_by_role("row").filter(has_text="invalid_signature").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    shot("42-request-log", page)
    page.goto(app_url)
    shot("41-application-usage", page)
    page.go_back()
    page.get_by_label("Status").select_option(label="Failed")
    page.get_by_role("button", name="Filter").click()
    shot("43-request-log-failed", page)
    page.get_by_role("row").filter(has_text="invalid_signature").get_by_role("link").first.click()
    lines = page.locator(".canonical-line").all_inner_texts()
    lines[3] = "limit=5&email=a@b.example"  # not sorted, not encoded
    page.get_by_label("Your string to sign").fill("\n".join(lines))
    page.get_by_role("button", name="Compare").click()
    page.locator(".canonical-line.differs").first.wait_for()
    shot("44-request-compare", page)
    page.goto(server.url + "/")
    shot("45-home-totals", page)

    page.goto(app_url)
    page.get_by_role("heading", name="Webhooks").scroll_into_view_if_needed()
    shot("46-application-webhooks", page)
    page.get_by_role("button", name="Add endpoint").click()
    page.get_by_label("Endpoint URL").wait_for()
    shot("47-add-endpoint", page)
    page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/a/rather/long/path/for/a/webhook/receiver")
    page.get_by_label("Description").fill("CRM sync")
    page.get_by_role("button", name="Add endpoint").click()
    page.get_by_label("Signing secret").wait_for()
    shot("48-endpoint-secret", page)
    page.get_by_role("button", name="Send test event").click()
    page.wait_for_timeout(1500)
    page.reload()
    shot("49-endpoint-deliveries", page)
    page.get_by_role("link", name="webhook.test").first.click()
    page.get_by_role("heading", name="Request body").wait_for()
    shot("50-delivery", page)

    page.goto(app_url)
    page.get_by_role("button", name="Roll").first.click()
    page.get_by_label("Old key expires").select_option(label="7 days")
    page.get_by_role("button", name="Roll key").click()
    page.get_by_text("rolled. Copy the new key now").wait_for()
    new_key = page.get_by_label("New API key").input_value()
    page.reload()
    shot("51-key-expires-soon", page)
    page.get_by_role("row").filter(has_text=new_key[-4:]).get_by_role("button", name="Edit").click()
    page.locator(".guard-form").wait_for()
    shot("52-key-edit-open", page)
    requests.post(server.url + "/v1/keys/revoke-exposed", json={"keys": [key], "source": "https://example.com/x"},
                  timeout=10)
    page.goto(app_url)
    shot("53-key-exposed", page)
    page.context.close()

    made = server.cli("create-operator", "--email", f"ops-{label}@platform.example", "--password-stdin",
                      stdin="a long enough passphrase\n")
    assert made.returncode == 0, made.stderr
    operator = browser.new_context(viewport={"width": width, "height": height}).new_page()
    operator.on("dialog", lambda dialog: dialog.accept())
    operator.goto(server.url + "/login")
    operator.get_by_label("Email").fill(f"ops-{label}@platform.example")
    operator.get_by_label("Password").fill("a long enough passphrase")
    operator.get_by_role("button", name="Log in").click()
    operator.get_by_role("heading", name="Partners", level=1).wait_for()
    shot("54-admin", operator)
    operator.get_by_role("link", name="Harbour Coffee").first.click()
    operator.get_by_role("heading", name="Harbour Coffee", level=1).wait_for()
    shot("55-admin-partner", operator)
    operator.get_by_role("button", name="Suspend partner").click()
    operator.get_by_role("button", name="Reactivate partner").wait_for()
    shot("56-admin-partner-suspended", operator)
    operator.get_by_role("button", name="Reactivate partner").click()
    operator.get_by_role("button", name="Suspend partner").wait_for()
    operator.context.close()

    # "Waiting for approval": a server of its own, where sign-ups wait for an operator.
    approval = LiveServer(Path(tempfile.mkdtemp()), env={"LOYALTY_SIGNUP": "approval"}).start()
    try:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.goto(approval.url + "/signup")
        page.get_by_label("Business name").fill("Harbour Coffee")
        page.get_by_label("Email").fill(f"waiting-{label}@example.com")
        page.get_by_label("Password").fill("a long enough passphrase")
        page.get_by_role("button", name="Create account").click()
        page.get_by_role("heading", name="Waiting for approval").wait_for()
        shot("57-waiting-for-approval", page)
        page.context.close()
    finally:
        approval.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/screens"))
