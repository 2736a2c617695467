"""Verify the webhooks the platform sends (Standard Webhooks signatures).

::

    from loyalty_sdk.webhooks import WebhookVerificationError, verify

    try:
        event = verify(request.get_data(), request.headers, os.environ["LOYALTY_WEBHOOK_SECRET"])
    except WebhookVerificationError:
        abort(400)
    if event.type == "stamps.added":
        ...

Pass the body exactly as received (bytes, before any JSON parsing) and the request's
headers (any mapping; names are matched without regard to case). The endpoint's signing
secret is the ``whsec_…`` value the portal showed once. While a rotated secret overlaps
the new one, each delivery carries both signatures, so either secret verifies it.

It accepts what the ``standardwebhooks`` library accepts and refuses what it refuses
(tests/sdk/test_webhooks.py checks both directions), with the standard library alone;
the one difference: a signed body that is JSON but not an object is refused here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from typing import Any, Mapping

from loyalty_sdk.objects import LoyaltyObject

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds a delivery's timestamp may be off from this machine's clock


class WebhookVerificationError(Exception):
    """The delivery is not one the platform signed with this secret (or it is too old or
    too new, or a header is missing). Answer it with a 4xx and do not act on it."""


class Event(LoyaltyObject):
    """A verified event: ``id`` (``evt_…``, the same on every retry: use it to ignore
    repeats), ``type``, ``created_at``, ``mode``, ``app_id`` and ``data``, the API object it
    is about (a member, ledger entry, claim, referral, key metadata) as a plain dict."""

    id: str
    type: str
    created_at: str
    mode: str
    app_id: str
    data: dict


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        if secret.startswith(SECRET_PREFIX):
            secret = secret[len(SECRET_PREFIX):]
        try:
            # Like the reference library: padding added, characters outside base64 skipped.
            key = base64.b64decode(secret + "==")
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("the signing secret is not base64 (expected whsec_…)") from None
    else:
        raise TypeError("the signing secret is a str (whsec_…) or bytes")
    if not key:
        raise WebhookVerificationError("the signing secret is empty")
    return key


def _timestamp(value: str, tolerance: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise WebhookVerificationError("the webhook-timestamp header is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise WebhookVerificationError("the webhook-timestamp header is not a time")
    now = time.time()
    if number < now - tolerance:
        raise WebhookVerificationError("the delivery's timestamp is too old")
    if number > now + tolerance:
        raise WebhookVerificationError("the delivery's timestamp is too new")
    return math.floor(number)


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str | bytes, *,
           tolerance: int = DEFAULT_TOLERANCE) -> Event:
    """Check a delivery's signature and timestamp; return its event.

    Raises ``WebhookVerificationError`` when a ``webhook-id``, ``webhook-timestamp`` or
    ``webhook-signature`` header is missing, the timestamp is more than ``tolerance``
    seconds from now, or no ``v1`` signature matches.
    """
    if isinstance(payload, bytes):
        try:
            body = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookVerificationError("the body is not UTF-8") from None
    else:
        body = payload
    lowered = {str(name).lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    msg_timestamp = lowered.get("webhook-timestamp")
    msg_signature = lowered.get("webhook-signature")
    if not (msg_id and msg_timestamp and msg_signature):
        raise WebhookVerificationError("a webhook-id, webhook-timestamp or webhook-signature header is missing")
    key = _secret_bytes(secret)
    seconds = _timestamp(msg_timestamp, tolerance)
    expected = hmac.new(key, f"{msg_id}.{seconds}.{body}".encode("utf-8"), hashlib.sha256).digest()
    for entry in msg_signature.split(" "):
        parts = entry.split(",")
        if len(parts) != 2:
            raise WebhookVerificationError("the webhook-signature header is malformed")
        version, signature = parts
        if version != "v1":
            continue
        try:
            given = base64.b64decode(signature)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("the webhook-signature header is malformed") from None
        if hmac.compare_digest(expected, given):
            try:
                data: Any = json.loads(body)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
            if not isinstance(data, dict):
                raise WebhookVerificationError("the body is not a JSON object")
            return Event(data)
    raise WebhookVerificationError("no signature matches this secret")


__all__ = ["Event", "WebhookVerificationError", "verify", "DEFAULT_TOLERANCE"]
