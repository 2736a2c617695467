"""A partner's webhook journey in a real browser against the real server (whose delivery
worker runs beside it): add an endpoint, copy its signing secret, send a test event that
a local receiver verifies, see the delivery and its attempt, rotate, disable, delete."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_journeys import create_application, sign_up
from tests.webhooks.receiver import Receiver, verified

pytestmark = pytest.mark.browser


def test_add_an_endpoint_send_a_test_event_rotate_and_delete(page: Page):
    with Receiver() as receiver:
        sign_up(page)
        create_application(page)
        expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
        page.get_by_role("button", name="Add endpoint").click()
        page.get_by_label("Endpoint URL").fill(receiver.url("/ok"))
        page.get_by_label("Description").fill("CRM sync")
        page.get_by_label("Test", exact=True).check()
        expect(page.get_by_label("stamps.added")).to_be_checked()
        page.get_by_label("api_key.exposed").uncheck()
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.get_by_label("Signing secret").inner_text()
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", secret)

        page.get_by_role("button", name="Send test event").click()
        [received] = receiver.wait_for(1, timeout=10)
        assert verified(received, secret)["type"] == "webhook.test"
        page.reload()
        expect(page.get_by_role("cell", name="Succeeded")).to_be_visible()
        page.get_by_role("link", name="webhook.test").click()
        expect(page.get_by_text("Attempt 1")).to_be_visible()
        expect(page.get_by_role("heading", name="Request body")).to_be_visible()
        page.go_back()

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Rotate secret").click()
        new_secret = page.get_by_label("Signing secret").inner_text()
        assert new_secret != secret
        expect(page.get_by_text("The previous secret also signs every delivery")).to_be_visible()

        page.get_by_role("button", name="Disable").click()
        expect(page.get_by_role("button", name="Enable")).to_be_visible()

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_text("No endpoints yet.")).to_be_visible()


def test_the_endpoint_page_fits_a_phone(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 375, "height": 740})
    page = context.new_page()
    try:
        sign_up(page)
        create_application(page)
        page.get_by_role("button", name="Add endpoint").click()
        page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/a/rather/long/path/for/a/webhook/receiver")
        page.get_by_role("button", name="Add endpoint").click()
        page.get_by_role("button", name="Send test event").click()
        page.reload()
        expect(page.get_by_role("button", name="Resend")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways ({width}px)"
        page.screenshot(path=str(live_server.data_dir / "webhook-endpoint-phone.png"), full_page=True)
    finally:
        context.close()
