"""Every event type of DESIGN.md §12 arrives at a local receiver, signed so that the
`standardwebhooks` library verifies it, with the API object it is about as `data`; the
event is written in the transaction of its change (a refused change leaves none)."""

from __future__ import annotations

import json

import pytest

from portal.domain import catalog, events, webhooks
from portal.domain.accounts import create_partner_account
from portal.domain.applications import create_application, issue_api_key
from portal.models import Application, WebhookDelivery, WebhookEvent
from tests.api.helpers import Credentials, SignedClient
from tests.web.portal_helpers import PASSWORD, PortalClient
from tests.webhooks.receiver import verified

pytestmark = pytest.mark.both_engines


@pytest.fixture
def shop(app):
    """A partner (owner can sign in), its application with an all-scopes test key, a card
    with a 5-stamp reward, and a test-mode endpoint for every event type."""
    from tests.api.helpers import ALL_SCOPES

    with app.app_context():
        user = create_partner_account("Corner Coffee", "owner@coffee.example", PASSWORD)
        application, secret = create_application(user.partner, "Till", by=user)
        _, key = issue_api_key(application, name="till", mode="test", scopes=ALL_SCOPES)
        card = catalog.create_card(user.partner, "Coffee card")
        reward = catalog.create_reward(card, "Cookie", 5)
        return {"creds": Credentials(application.app_id, secret, key, user.partner_id), "app": application,
                "user": user, "card": card.public_id, "reward": reward.public_id}


def add_endpoint(app, application, url, *, mode="test", types=events.EVENT_TYPES):
    with app.app_context():
        return webhooks.create_endpoint(Application.get_by_id(application.id), url=url, mode=mode, event_types=types)


def test_every_event_type_arrives_signed_with_its_api_object(app, client, shop, receiver, deliver_all):
    endpoint, secret = add_endpoint(app, shop["app"], receiver.url("/ok"))
    api = SignedClient(client, shop["creds"])

    ann = api.post("/v1/members", json={"email": "ann@example.com"}).get_json()
    bob = api.post("/v1/members", json={"email": "bob@example.com"}).get_json()
    assert api.patch(f"/v1/members/{ann['id']}", json={"name": "Ann"}).status_code == 200
    assert api.post(f"/v1/members/{ann['id']}/otp", json={"channel": "email"}).status_code == 200
    assert api.post(f"/v1/members/{ann['id']}/otp/verify", json={"code": "000000"}).status_code == 200
    stamps = api.post(f"/v1/members/{ann['id']}/stamps", json={"card_id": shop["card"], "count": 6}).get_json()
    assert api.post(f"/v1/members/{ann['id']}/stamps/redeem",
                    json={"card_id": shop["card"], "reward_id": shop["reward"]}).status_code == 201
    assert api.post(f"/v1/members/{ann['id']}/cashback/credit", json={"amount": 500}).status_code == 201
    assert api.post(f"/v1/members/{ann['id']}/cashback/redeem", json={"amount": 200}).status_code == 201
    claim = api.post("/v1/claims", json={"member_id": ann["id"], "kind": "cashback", "amount": 100}).get_json()
    other = api.post("/v1/claims", json={"member_id": ann["id"], "kind": "cashback", "amount": 100}).get_json()
    assert api.post(f"/v1/claims/{claim['id']}/approve").status_code == 200
    assert api.post(f"/v1/claims/{other['id']}/reject", json={"reason": "no receipt"}).status_code == 200
    assert api.post("/v1/referrals/apply", json={"code": ann["referral_code"], "member_id": bob["id"]}).status_code == 201

    portal = PortalClient(client)
    portal.login("owner@coffee.example")
    base = f"/developer/apps/{shop['app'].app_id}"
    assert portal.post(f"{base}/keys", {"name": "web", "mode": "test", "scopes": ["member_read"],
                                        "expires": "never"}).status_code == 200
    assert portal.post(f"{base}/secret", {"grace": "1h"}).status_code == 200
    with app.app_context():
        from portal.models import ApiKey
        web_key = ApiKey.get((ApiKey.name == "web"))
    assert portal.post(f"{base}/keys/{web_key.id}/roll", {"old_expires": "1h"}).status_code == 200
    assert portal.post(f"{base}/keys/{web_key.id}/revoke").status_code in (200, 303)
    with app.app_context():  # the guardrails' events (§13) go through the same emit
        for kind in ("api_key.expiring", "api_key.exposed"):
            events.emit(shop["app"], "test", kind, {"object": "api_key", "id": web_key.masked})

    deliver_all()
    arrived = {}
    for received in receiver.received:
        event = verified(received, secret)  # raises unless the library accepts it
        assert received.headers["webhook-id"] == event["id"] and event["id"].startswith("evt_")
        assert set(event) == {"id", "type", "created_at", "mode", "app_id", "data"}
        assert event["mode"] == "test" and event["app_id"] == shop["app"].app_id
        arrived.setdefault(event["type"], []).append(event["data"])
    assert set(arrived) == set(events.EVENT_TYPES)
    assert arrived["member.created"][0] == ann
    assert arrived["stamps.added"] == [stamps]
    assert arrived["stamps.redeemed"][0]["object"] == "redemption"
    assert arrived["claim.approved"][0]["status"] == "approved"
    assert arrived["claim.rejected"][0]["status"] == "rejected"
    assert arrived["member.verified"][0]["verified"] is True
    assert arrived["referral.applied"][0]["referee_id"] == bob["id"]
    assert arrived["api_key.rolled"][0]["replaces"] == web_key.masked
    assert arrived["api_key.revoked"][0]["revoked_at"] is not None
    assert arrived["app_secret.regenerated"][0]["previous_valid_until"] is not None
    assert all("secret_" not in json.dumps(data) for data in arrived["app_secret.regenerated"])


def test_an_endpoint_gets_only_its_mode_and_its_types(app, client, shop, receiver, deliver_all):
    _, stamps_secret = add_endpoint(app, shop["app"], receiver.url("/ok"), types=["stamps.added"])
    with app.app_context():  # a production endpoint of the same application hears nothing of test mode
        webhooks.create_endpoint(Application.get_by_id(shop["app"].id), url="https://1.1.1.1/hook", mode="prod",
                                 event_types=["stamps.added"])
    api = SignedClient(client, shop["creds"])
    ann = api.post("/v1/members", json={"email": "ann@example.com"}).get_json()
    api.post(f"/v1/members/{ann['id']}/stamps", json={"card_id": shop["card"], "count": 1})
    deliver_all()
    assert [verified(r, stamps_secret)["type"] for r in receiver.received] == ["stamps.added"]


def test_a_refused_change_writes_no_event(app, client, shop, receiver, deliver_all):
    add_endpoint(app, shop["app"], receiver.url("/ok"))
    api = SignedClient(client, shop["creds"])
    ann = api.post("/v1/members", json={"email": "ann@example.com"}).get_json()
    refused = api.post(f"/v1/members/{ann['id']}/cashback/redeem", json={"amount": 100})
    assert refused.status_code == 409
    again = api.post("/v1/members", json={"email": "ann@example.com"})
    assert again.status_code == 409
    with app.app_context():
        assert [e.type for e in WebhookEvent.select()] == ["member.created"]
        assert WebhookDelivery.select().count() == 1


def test_a_change_whose_event_cannot_be_written_is_rolled_back(app, client, shop, monkeypatch):
    """The outbox row and the change commit together: when writing the event fails, the
    stamps are not added either."""
    add_endpoint(app, shop["app"], "http://127.0.0.1:9/ok")
    api = SignedClient(client, shop["creds"])
    ann = api.post("/v1/members", json={"email": "ann@example.com"}).get_json()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(events, "record_event", broken)
    res = api.post(f"/v1/members/{ann['id']}/stamps", json={"card_id": shop["card"], "count": 3})
    assert res.status_code == 500
    monkeypatch.undo()
    balance = api.get(f"/v1/members/{ann['id']}/stamps").get_json()["data"][0]["balance"]
    assert balance == 0
