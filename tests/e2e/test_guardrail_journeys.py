"""Key guardrails in a real browser (DESIGN.md §13): a key created with Allowed IPs refuses
a call from outside them; "Edit" changes them in place; a reported key shows "Exposed" with
its source and a banner."""

from __future__ import annotations

import pytest
import requests
from loyalty_sdk import IPNotAllowedError, LoyaltyClient
from playwright.sync_api import Page, expect

from tests.e2e.test_journeys import create_application, key_row, sign_up

pytestmark = pytest.mark.browser


def test_allowed_ips_set_in_the_form_refuse_then_edit_lets_the_call_through(page: Page, live_server):
    sign_up(page)
    app_id = create_application(page)
    secret = page.get_by_label("App Secret").input_value()
    page.get_by_role("button", name="Create API key").click()
    page.get_by_label("Key name").fill("Till")
    page.get_by_label("card_read", exact=True).check()
    page.get_by_label("Allowed IPs").fill("203.0.113.0/24")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key").input_value()
    row = key_row(page, key)
    expect(row).to_contain_text("Allowed from 203.0.113.0/24 · 100 requests/min")

    client = LoyaltyClient(app_id=app_id, app_secret=secret, api_key=key, base_url=live_server.url, max_retries=0)
    with pytest.raises(IPNotAllowedError):
        client.key_info()

    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Allowed IPs").fill("127.0.0.1\n::1")
    page.get_by_role("button", name="Save").click()
    expect(key_row(page, key)).to_contain_text("Allowed from 127.0.0.1, ::1")
    assert client.key_info(refresh=True).name == "Till"

    requests.post(live_server.url + "/v1/keys/revoke-exposed", json={"keys": [key], "source": "https://paste.example/x"},
                  timeout=10)
    page.reload()
    expect(key_row(page, key)).to_contain_text("Exposed")
    expect(page.get_by_role("alert").filter(has_text="reported exposed and revoked")).to_contain_text(
        "https://paste.example/x")
    assert page.console_errors == []
