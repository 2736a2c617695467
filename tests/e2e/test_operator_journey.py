"""The operator console in a real browser against the real server (DESIGN.md §14), on a
server of its own with LOYALTY_SIGNUP=approval: a partner signs up and waits; the
operator finds it, approves it (its key starts working), suspends it (its key answers
403 account_disabled on the very next call) and reactivates it; every step is in the
partner's audit log."""

from __future__ import annotations

import json
import secrets

import pytest
import requests
from playwright.sync_api import expect

from tests.api.helpers import SignedAuth
from tests.conftest import LiveServer
from tests.e2e.test_journeys import PASSWORD

pytestmark = pytest.mark.browser

OPERATOR_EMAIL = "ops@platform.example"


@pytest.fixture(scope="module")
def approval_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("approval"), env={"LOYALTY_SIGNUP": "approval"}).start()
    made = server.cli("create-operator", "--email", OPERATOR_EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    yield server
    server.stop()


def new_page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def test_operator_approves_suspends_and_reactivates_a_partner(browser, approval_server):
    server = approval_server
    business = f"Bakery {secrets.token_hex(3)}"
    email = f"owner-{secrets.token_hex(4)}@bakery.example"

    partner = new_page(browser, server)
    partner.goto("/signup")
    partner.get_by_label("Business name").fill(business)
    partner.get_by_label("Email").fill(email)
    partner.get_by_label("Password").fill(PASSWORD)
    partner.get_by_role("button", name="Create account").click()
    expect(partner.get_by_role("heading", name="Waiting for approval")).to_be_visible()

    # Its integration is ready (made by the operator's shell), but waits too.
    made = server.cli("create-app", "--owner", email, "--name", "Till", "--json")
    assert made.returncode == 0, made.stderr
    app = json.loads(made.stdout)
    key = server.cli("create-key", "--app", app["app_id"], "--mode", "test", "--scope", "stamps_read", "--json")
    assert key.returncode == 0, key.stderr
    auth = SignedAuth(app["app_id"], app["app_secret"], json.loads(key.stdout)["api_key"])

    def call() -> requests.Response:
        return requests.get(server.url + "/v1/key", auth=auth, timeout=10)

    waiting = call()
    assert waiting.status_code == 403 and waiting.json()["error"]["code"] == "account_disabled"

    operator = new_page(browser, server)
    operator.goto("/login")
    operator.get_by_label("Email").fill(OPERATOR_EMAIL)
    operator.get_by_label("Password").fill(PASSWORD)
    operator.get_by_role("button", name="Log in").click()
    nav = operator.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Operator")).to_be_visible()
    expect(nav.get_by_role("link", name="Developer")).to_have_count(0)
    operator.get_by_label("Search").fill(email)
    row = operator.get_by_role("row").filter(has_text=business)
    expect(row).to_contain_text("Waiting for approval")
    expect(operator.get_by_role("row")).to_have_count(2)  # the header and this partner
    row.get_by_role("link", name=business).click()

    operator.get_by_role("button", name="Approve").click()
    expect(operator.get_by_role("status")).to_contain_text(f"{business} is active")
    assert call().status_code == 200
    partner.reload()
    expect(partner.get_by_role("heading", name="Welcome")).to_be_visible()

    operator.get_by_role("button", name="Suspend partner").click()
    expect(operator.get_by_role("status")).to_contain_text(f"{business} is suspended")
    refused = call()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "account_disabled"

    operator.get_by_role("button", name="Reactivate partner").click()
    expect(operator.get_by_role("status")).to_contain_text(f"{business} is active")
    assert call().status_code == 200

    audit = operator.get_by_role("region", name="Audit log")
    for action in ("operator.partner_approved", "operator.partner_suspended", "operator.partner_reactivated"):
        expect(audit).to_contain_text(action)

    assert not operator.console_errors and not partner.console_errors
    partner.goto("/admin/")  # a partner is no operator
    expect(partner.get_by_role("heading", name="Not allowed")).to_be_visible()
    operator.context.close()
    partner.context.close()
