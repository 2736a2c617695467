"""The Program page in a real browser: an owner configures a card, a reward and the
referral reward, and the API shows them to the partner's code."""

from __future__ import annotations

import pytest
import requests

from tests.api.helpers import SignedAuth

pytestmark = pytest.mark.browser


def test_an_owner_configures_the_program_and_the_api_serves_it(live_server, page):
    demo = live_server.demo()
    page.goto(live_server.url + "/login")
    page.get_by_label("Email").fill(demo["email"])
    page.get_by_label("Password").fill(demo["password"])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Program").click()
    page.wait_for_url("**/program")

    new_card = page.locator("form", has=page.get_by_role("button", name="Add card"))
    new_card.get_by_label("Card name").fill("Juice card")
    new_card.get_by_label("Description").fill("One stamp per juice")
    new_card.get_by_role("button", name="Add card").click()
    page.get_by_text("Card “Juice card” added").wait_for()

    juice = page.get_by_role("article", name="Juice card")
    juice.get_by_label("New reward").fill("Free juice")
    juice.get_by_label("Stamps needed").fill("6")
    juice.get_by_role("button", name="Add reward").click()
    page.get_by_text("Reward “Free juice” added to Juice card.").wait_for()

    page.get_by_label("Cashback", exact=True).check()
    page.get_by_label("Cashback per referral").fill("1.50")
    page.get_by_role("button", name="Save program settings").click()
    page.get_by_text("Program settings saved.").wait_for()

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("article", name="Lunch card").get_by_role("button", name="Delete card Lunch card").click()
    page.get_by_text("Card “Lunch card” deleted.").wait_for()
    assert page.get_by_role("article", name="Lunch card").count() == 0

    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    cards = requests.get(live_server.url + "/v1/cards", auth=auth, timeout=10).json()["data"]
    assert [c["name"] for c in cards] == ["Juice card", "Coffee card"]
    assert [(r["name"], r["stamps_cost"]) for r in cards[0]["rewards"]] == [("Free juice", 6)]

    # The referral reward is now 150 cents of cashback to both members.
    ann = requests.post(live_server.url + "/v1/members", json={"email": "ann@example.com"}, auth=auth).json()
    bob = requests.post(live_server.url + "/v1/members", json={"email": "bob@example.com"}, auth=auth).json()
    applied = requests.post(live_server.url + "/v1/referrals/apply", auth=auth,
                            json={"code": ann["referral_code"], "member_id": bob["id"]})
    assert applied.status_code == 201
    for member in (ann, bob):
        balance = requests.get(f"{live_server.url}/v1/members/{member['id']}/cashback", auth=auth).json()
        assert (balance["balance"], balance["currency"]) == (150, "EUR")
