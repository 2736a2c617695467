"""A partner's first failing call, in a real browser at phone width against the real server:
send a badly signed request, find it in the request log within a second, open it, paste the
string that was signed and see which line differs; the usage chart fits the screen."""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.api.helpers import SignedAuth
from tests.e2e.test_journeys import create_application, create_test_key, sign_up

pytestmark = pytest.mark.browser


def test_a_badly_signed_request_is_in_the_log_and_compare_finds_the_line(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    try:
        sign_up(page)
        app_id = create_application(page)
        key = create_test_key(page, "Checkout", ("member_read",))
        response = requests.get(live_server.url + "/v1/members?limit=5&email=a%40b.example",
                                auth=SignedAuth(app_id, "secret_" + "w" * 40, key), timeout=10)
        body = response.json()["error"]
        assert body["code"] == "invalid_signature"
        sent = time.monotonic()

        page.get_by_role("link", name="Request log").first.click()
        row = page.get_by_role("row").filter(has_text="invalid_signature")
        while not row.count() and time.monotonic() - sent < 3:
            page.reload()
        assert time.monotonic() - sent < 3
        expect(row).to_contain_text("401")
        page.get_by_label("Status").select_option(label="Failed")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"status=failed"))
        page.get_by_role("row").filter(has_text="invalid_signature").get_by_role("link").click()

        lines = body["canonical_string"].split("\n")
        lines[3] = "limit=5&email=a@b.example"  # not sorted, not encoded: the classic mistake
        page.get_by_label("Your string to sign").fill("\n".join(lines))
        page.get_by_role("button", name="Compare").click()
        expect(page.get_by_role("region", name="Signature").get_by_role("status")).to_contain_text(
            "Line 4 (query) differs.")
        expect(page.locator(".canonical-line.differs")).to_have_text(body["canonical_string"].split("\n")[3])

        page.goto(f"/developer/apps/{app_id}")
        chart = page.get_by_role("img", name="API requests, last 14 days")
        expect(chart).to_be_visible()
        assert chart.bounding_box()["width"] <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert errors == []
    finally:
        context.close()
