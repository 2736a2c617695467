"""loyalty_sdk.webhooks.verify against the standardwebhooks library, in both directions:
every case is judged by both, and they must agree (accept with the same event, or refuse).
The SDK itself imports nothing but the standard library (its runtime dependency stays
`requests`, checked by tests/sdk/test_packaging.py)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
from loyalty_sdk.webhooks import Event, WebhookVerificationError, verify
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps({"id": "evt_1", "type": "stamps.added", "created_at": "2026-12-03T10:00:00Z", "mode": "test",
                   "app_id": "app_0123456789abcdef", "data": {"object": "ledger_entry", "amount": 3}})


def signature(secret, msg_id, timestamp, body):
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(float(timestamp)), tz=timezone.utc), body)


def headers(*, msg_id="evt_1", timestamp=None, sig=None, secret=SECRET, body=BODY):
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp,
            "webhook-signature": sig if sig is not None else signature(secret, msg_id, timestamp, body)}


def judged(body, hdrs, secret):
    """(library's verdict, SDK's verdict): the parsed event, or "refused"."""
    try:
        theirs = Webhook(secret).verify(body, hdrs)
    except Exception:  # the library raises WebhookVerificationError, or ValueError on a malformed header
        theirs = "refused"
    try:
        ours = verify(body, hdrs, secret)
        assert isinstance(ours, Event)
        ours = ours.raw
    except WebhookVerificationError:
        ours = "refused"
    return theirs, ours


def cases() -> dict:
    """Every case, signed now (a test may run minutes after collection)."""
    NOW = int(time.time())
    good = signature(SECRET, "evt_1", str(NOW), BODY)
    return {
        "valid": (BODY, headers(), SECRET, "accepted"),
        "valid, bytes body": (BODY.encode(), headers(), SECRET, "accepted"),
        "header names in any case": (BODY, {k.upper(): v for k, v in headers().items()}, SECRET, "accepted"),
        "secret without the whsec_ prefix": (BODY, headers(), SECRET[len("whsec_"):], "accepted"),
        "wrong secret": (BODY, headers(), OTHER, "refused"),
        "bad secret prefix": (BODY, headers(), "whsk_" + SECRET[len("whsec_"):], "refused"),
        "body changed": (BODY.replace("3}", "30}"), headers(), SECRET, "refused"),
        "id changed": (BODY, {**headers(), "webhook-id": "evt_2"}, SECRET, "refused"),
        "4 minutes old": (BODY, headers(timestamp=str(NOW - 240)), SECRET, "accepted"),
        "6 minutes old": (BODY, headers(timestamp=str(NOW - 360)), SECRET, "refused"),
        "6 minutes ahead": (BODY, headers(timestamp=str(NOW + 360)), SECRET, "refused"),
        "fractional timestamp": (BODY, headers(timestamp=f"{NOW}.5", sig=good), SECRET, "accepted"),
        "timestamp not a number": (BODY, headers(timestamp="soon", sig=good), SECRET, "refused"),
        "timestamp nan": (BODY, headers(timestamp="nan", sig=good), SECRET, "refused"),
        "timestamp changed": (BODY, headers(timestamp=str(NOW - 1), sig=good), SECRET, "refused"),
        "missing webhook-id": (BODY, {k: v for k, v in headers().items() if k != "webhook-id"}, SECRET, "refused"),
        "missing webhook-timestamp": (BODY, {k: v for k, v in headers().items() if k != "webhook-timestamp"}, SECRET,
                                      "refused"),
        "missing webhook-signature": (BODY, {k: v for k, v in headers().items() if k != "webhook-signature"}, SECRET,
                                      "refused"),
        "empty webhook-signature": (BODY, headers(sig=""), SECRET, "refused"),
        "two signatures, the second matches": (BODY, headers(sig=f"{signature(OTHER, 'evt_1', str(NOW), BODY)} {good}"),
                                               SECRET, "accepted"),
        "two signatures, neither matches": (BODY, headers(sig=f"{signature(OTHER, 'evt_1', str(NOW), BODY)} v1,AAAA"),
                                            SECRET, "refused"),
        "right signature under another version": (BODY, headers(sig="v2," + good.split(",", 1)[1]), SECRET, "refused"),
        "signature without a version": (BODY, headers(sig=good.split(",", 1)[1]), SECRET, "refused"),
        "signature with extra commas": (BODY, headers(sig=good + ",x"), SECRET, "refused"),
    }


CASE_NAMES = list(cases())


@pytest.mark.parametrize("case", CASE_NAMES)
def test_verify_agrees_with_the_standardwebhooks_library(case):
    body, hdrs, secret, expected = cases()[case]
    theirs, ours = judged(body, hdrs, secret)
    assert (theirs == "refused") == (expected == "refused"), f"the library {theirs!r}"
    assert ours == theirs


def test_the_event_reads_as_attributes():
    event = verify(BODY, headers(), SECRET)
    assert (event.id, event.type, event.mode) == ("evt_1", "stamps.added", "test")
    assert event.data == {"object": "ledger_entry", "amount": 3}


def test_a_custom_tolerance():
    old = headers(timestamp=str(int(time.time()) - 30))
    assert verify(BODY, old, SECRET, tolerance=60).id == "evt_1"
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(BODY, old, SECRET, tolerance=10)


def test_what_the_platform_sends_verifies(app):
    """The server's own signing (portal.domain.webhooks.signed_headers) through the SDK,
    with both signatures of a rotation."""
    from portal.domain import webhooks
    from portal.domain.applications import create_application
    from portal.models import Partner, WebhookEndpoint

    with app.app_context():
        application, _ = create_application(Partner.create(name="Shop"), "Till")
        endpoint, first = webhooks.create_endpoint(application, url="http://127.0.0.1:9/", mode="test",
                                                   event_types=["stamps.added"])
        second = webhooks.rotate_secret(endpoint)
        sent = webhooks.signed_headers(WebhookEndpoint.get_by_id(endpoint.id), "evt_1", BODY, int(time.time()))
    assert verify(BODY.encode(), sent, first).type == "stamps.added"
    assert verify(BODY.encode(), sent, second).type == "stamps.added"
    with pytest.raises(WebhookVerificationError):
        verify(BODY.encode(), sent, OTHER)


def test_the_readmes_flask_receiver_accepts_a_signed_delivery_and_refuses_a_forged_one(monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "sdk" / "README.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "webhooks" in block)
    monkeypatch.setenv("LOYALTY_WEBHOOK_SECRET", SECRET)
    import sys
    import types

    module = types.ModuleType("readme_receiver")
    module.__file__ = str(Path(__file__))
    monkeypatch.setitem(sys.modules, "readme_receiver", module)
    namespace = module.__dict__
    exec(compile(example, "sdk/README.md", "exec"), namespace)
    client = namespace["app"].test_client()
    signed = client.post("/webhooks/loyalty", data=BODY, headers=headers(), content_type="application/json")
    assert signed.status_code == 204 and "stamps.added" in capsys.readouterr().out
    forged = client.post("/webhooks/loyalty", data=BODY, headers=headers(secret=OTHER), content_type="application/json")
    assert forged.status_code == 400
