"""Webhook endpoints and deliveries (DESIGN.md §12).

Endpoints: created with a secret shown once (`whsec_…`, stored encrypted like App
Secrets), rotated with 24 hours of overlap, enabled, disabled and deleted; every change is
audited. Deliveries: the worker (`portal.webhooks_worker`) claims due ones with a lease
(`claim_due`), signs them (`signature_header`, the `standardwebhooks` library) and records
what came back (`record_outcome`), which schedules the retry, fails the delivery after
the last one, and disables an endpoint that answered 410 or failed for 5 days.

Each attempt is made by exactly one process: a claim is one `SELECT … FOR UPDATE SKIP
LOCKED` plus an UPDATE on PostgreSQL, one UPDATE under the database's write lock on
SQLite, and an outcome counts only while its lease token is still the delivery's.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from portal.config import current_settings
from portal.db import is_postgres, write_transaction
from portal.domain import Conflict, Invalid, NotFound, audit
from portal.domain.applications import secret_box
from portal.domain.events import EVENT_TYPES, TEST_EVENT_TYPE, record_event
from portal.inputs import row_id
from portal.models import (
    MODES,
    Application,
    DeliveryAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WorkerHeartbeat,
    new_public_id,
    utcnow,
)

URL_MAX = 2048
DESCRIPTION_MAX = 200
SECRET_OVERLAP = timedelta(hours=24)  # a rotated-away secret still signs this long
FAILING_DISABLES_AFTER = timedelta(days=5)
EXCERPT_BYTES = 2048  # of each response, kept with its attempt
ENDPOINTS_PER_APP_MAX = 20


def new_endpoint_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# -- URLs and addresses ----------------------------------------------------------------------


def address_refusal(address: str) -> str | None:
    """Why a production endpoint may not be reached at `address` ("127.0.0.1, a loopback
    address"), or None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("multicast", ip.is_multicast),
                       ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved)):
        if flag:
            return f"{ip}, a {kind} address"
    if not ip.is_global:
        return f"{ip}, not a public address"
    return None


def url_refusal(url: str, mode: str, *, resolve: bool = True) -> str | None:
    """Why `url` cannot be an endpoint of `mode` (a sentence), or None if it can."""
    if not url or len(url) > URL_MAX:
        return f"Enter the endpoint's URL (at most {URL_MAX} characters)."
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "The URL may not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "That is not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The URL must start with https:// (or http:// for a test-mode endpoint) and name a host."
    if parts.username is not None or parts.password is not None:
        return "The URL may not carry a user name or password."
    if parts.fragment:
        return "The URL may not have a #fragment."
    allow_private = current_settings().webhook_allow_private
    if mode == "prod" and not allow_private:
        if parts.scheme != "https":
            return "A production endpoint's URL must start with https://."
        host = parts.hostname
        if host == "localhost" or host.endswith(".localhost"):
            return "A production endpoint may not be on localhost."
        try:
            refusal = address_refusal(host)
        except ValueError:  # a name, not an address
            refusal = None
            if resolve:
                try:
                    infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
                except (socket.gaierror, UnicodeError):
                    infos = []  # not resolvable yet: checked again at every delivery
                for info in infos:
                    refusal = address_refusal(info[4][0])
                    if refusal:
                        break
        if refusal:
            return f"A production endpoint must be on a public address; {host} is {refusal}."
    return None


def _clean_event_types(event_types) -> str:
    chosen = sorted(set(event_types or ()))
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown:
        raise Invalid(f"Unknown event type {unknown[0]}.", field="event_types")
    if not chosen:
        raise Invalid("Choose at least one event type.", field="event_types")
    return "" if len(chosen) == len(EVENT_TYPES) else " ".join(chosen)


def _clean_description(description: str) -> str:
    description = " ".join((description or "").split())
    if len(description) > DESCRIPTION_MAX:
        raise Invalid(f"Use at most {DESCRIPTION_MAX} characters for the description.", field="description")
    return description


# -- endpoints -------------------------------------------------------------------------------


def create_endpoint(app: Application, *, url: str, description: str = "", mode: str, event_types,
                    by=None) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it and its signing secret's plaintext (shown once)."""
    if mode not in MODES:
        raise Invalid("Choose Test or Production.", field="mode")
    url = (url or "").strip()
    refusal = url_refusal(url, mode)
    if refusal:
        raise Invalid(refusal, field="url")
    description = _clean_description(description)
    types = _clean_event_types(event_types)
    secret = new_endpoint_secret()
    with write_transaction():
        if WebhookEndpoint.select().where(WebhookEndpoint.application == app).count() >= ENDPOINTS_PER_APP_MAX:
            raise Conflict(f"An application can have at most {ENDPOINTS_PER_APP_MAX} endpoints.",
                           code="too_many_endpoints", field="url")
        endpoint = WebhookEndpoint.create(
            public_id=new_public_id("we_"), application=app, mode=mode, url=url, description=description,
            event_types=types, secret_ciphertext=secret_box().encrypt(secret), created_by=by,
        )
        audit.record("webhook.created", partner=app.partner_id, user=by, target=endpoint.public_id,
                     detail=f"{mode} {url}")
    return endpoint, secret


def rotate_secret(endpoint: WebhookEndpoint, *, by=None) -> str:
    """A new signing secret; the current one keeps signing (both signatures are sent) for
    24 hours. Returns the new plaintext, shown once."""
    secret = new_endpoint_secret()
    now = utcnow()
    with write_transaction():
        current = WebhookEndpoint.get_by_id(endpoint.id)
        WebhookEndpoint.update(
            secret_ciphertext=secret_box().encrypt(secret),
            previous_secret_ciphertext=current.secret_ciphertext,
            previous_secret_expires_at=now + SECRET_OVERLAP,
        ).where(WebhookEndpoint.id == endpoint.id).execute()
        audit.record("webhook.secret_rotated", partner=endpoint.application.partner_id, user=by,
                     target=endpoint.public_id, detail="previous secret valid for 24 hours")
    return secret


def set_enabled(endpoint: WebhookEndpoint, enabled: bool, *, by=None) -> None:
    """Enable or disable an endpoint. Enabling clears the platform's reason and the failing
    clock; pending deliveries go out again."""
    with write_transaction():
        if enabled:
            WebhookEndpoint.update(enabled=True, disabled_reason="", disabled_at=None, failing_since=None).where(
                WebhookEndpoint.id == endpoint.id).execute()
        else:
            WebhookEndpoint.update(enabled=False, disabled_reason="", disabled_at=utcnow()).where(
                WebhookEndpoint.id == endpoint.id).execute()
        audit.record("webhook.enabled" if enabled else "webhook.disabled", partner=endpoint.application.partner_id,
                     user=by, target=endpoint.public_id, detail=endpoint.url)


def delete_endpoint(endpoint: WebhookEndpoint, *, by=None) -> None:
    """Delete an endpoint with its deliveries: it receives nothing more."""
    with write_transaction():
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint.id).execute()
        WebhookEndpoint.delete().where(WebhookEndpoint.id == endpoint.id).execute()
        audit.record("webhook.deleted", partner=endpoint.application.partner_id, user=by,
                     target=endpoint.public_id, detail=endpoint.url)


def send_test_event(endpoint: WebhookEndpoint, *, by=None) -> WebhookEvent:
    """A `webhook.test` event to this endpoint alone (disabled or not, it is queued)."""
    app = endpoint.application
    with write_transaction():
        return record_event(app, endpoint.mode, TEST_EVENT_TYPE,
                            {"object": "webhook_test", "endpoint_id": endpoint.public_id,
                             "message": "A test event sent from the partner portal."}, [endpoint])


def resend(delivery: WebhookDelivery, *, by=None) -> WebhookDelivery:
    """Queue the delivery's event again for its endpoint, as a new delivery due now."""
    now = utcnow()
    with write_transaction():
        return WebhookDelivery.create(event=delivery.event_id, endpoint=delivery.endpoint_id, status="pending",
                                      next_attempt_at=now, created_at=now)


def endpoints_of(app: Application) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.select().where(WebhookEndpoint.application == app).order_by(WebhookEndpoint.id))


def owned_endpoint(app: Application, public_id: str) -> WebhookEndpoint | None:
    """The application's endpoint with this id (the caller already checked the partner)."""
    endpoint = WebhookEndpoint.get_or_none(
        (WebhookEndpoint.public_id == str(public_id)) & (WebhookEndpoint.application == app))
    if endpoint is not None:
        endpoint.application = app
    return endpoint


def deliveries_of(endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries, newest first, with their events."""
    return list(
        WebhookDelivery.select(WebhookDelivery, WebhookEvent).join(WebhookEvent)
        .where(WebhookDelivery.endpoint == endpoint).order_by(WebhookDelivery.id.desc()).limit(limit)
    )


def owned_delivery(endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery:
    delivery_id = row_id(delivery_id)
    if delivery_id is None:
        raise NotFound("No such delivery.", field="delivery")
    delivery = (WebhookDelivery.select(WebhookDelivery, WebhookEvent).join(WebhookEvent)
                .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.endpoint == endpoint)).first())
    if delivery is None:
        raise NotFound("No such delivery.", field="delivery")
    return delivery


def attempts_of(delivery: WebhookDelivery) -> list[DeliveryAttempt]:
    return list(DeliveryAttempt.select().where(DeliveryAttempt.delivery == delivery).order_by(DeliveryAttempt.id))


# -- signing ---------------------------------------------------------------------------------


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its overlap."""
    now = now or utcnow()
    box = secret_box()
    found = [box.decrypt(endpoint.secret_ciphertext)]
    if (endpoint.previous_secret_ciphertext and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > now):
        found.append(box.decrypt(endpoint.previous_secret_ciphertext))
    return found


def signed_headers(endpoint: WebhookEndpoint, event_id: str, body: str, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (both signatures while a rotated
    secret overlaps, space-separated)."""
    when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    signatures = [Webhook(secret).sign(event_id, when, body) for secret in signing_secrets(endpoint)]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


# -- the worker's side: claim, record, heartbeat ---------------------------------------------


@dataclass
class Claimed:
    """A leased delivery: what the worker needs to make one attempt."""

    delivery_id: int
    lease_token: str
    attempt: int  # this attempt's number (1 for the first)
    event_id: str
    body: str
    endpoint: WebhookEndpoint


def claim_due(limit: int, *, now: datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` due deliveries of enabled endpoints to this process."""
    if limit <= 0:
        return []
    now = now or utcnow()
    token = secrets.token_hex(16)
    lease = timedelta(seconds=current_settings().webhook_lease_seconds)
    enabled = WebhookEndpoint.select(WebhookEndpoint.id).where(WebhookEndpoint.enabled == True)  # noqa: E712
    due = (WebhookDelivery.select(WebhookDelivery.id)
           .where((WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now)
                  & (WebhookDelivery.locked_until.is_null() | (WebhookDelivery.locked_until < now))
                  & WebhookDelivery.endpoint.in_(enabled))
           .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    # A read first: an idle worker polling often never takes SQLite's write lock.
    if not due.exists():
        return []
    with write_transaction():
        if is_postgres():
            ids = [row.id for row in due.for_update("FOR UPDATE SKIP LOCKED")]
            if not ids:
                return []
            WebhookDelivery.update(lease_token=token, locked_until=now + lease).where(
                WebhookDelivery.id.in_(ids)).execute()
        else:  # one statement under the write lock: no other process sees the rows free
            changed = WebhookDelivery.update(lease_token=token, locked_until=now + lease).where(
                WebhookDelivery.id.in_(due)).execute()
            if not changed:
                return []
        rows = list(
            WebhookDelivery.select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
            .join(WebhookEvent).switch(WebhookDelivery).join(WebhookEndpoint)
            .where(WebhookDelivery.lease_token == token)
        )
    return [Claimed(row.id, token, row.attempts + 1, row.event.public_id, row.event.body, row.endpoint)
            for row in rows]


@dataclass
class Outcome:
    """What one POST came to."""

    succeeded: bool
    status_code: int | None = None
    latency_ms: int = 0
    excerpt: str = ""
    error: str = ""
    retry_after: int | None = None  # seconds, from a 429/503 Retry-After


def record_outcome(claimed: Claimed, outcome: Outcome, *, started_at: datetime,
                   now: datetime | None = None) -> str | None:
    """Record the attempt and what follows from it; returns the delivery's new status, or
    None when the lease was lost (the endpoint was deleted meanwhile, or the lease ran out
    and another process took the delivery over)."""
    now = now or utcnow()
    schedule = current_settings().webhook_retry_seconds
    endpoint = claimed.endpoint
    with write_transaction():
        fields = {"attempts": claimed.attempt, "lease_token": None, "locked_until": None,
                  "last_status_code": outcome.status_code, "last_error": outcome.error[:500]}
        if outcome.succeeded:
            status = "succeeded"
            fields.update(status=status, finished_at=now, next_attempt_at=None)
        elif outcome.status_code == 410 or claimed.attempt > len(schedule):
            status = "failed"
            fields.update(status=status, finished_at=now, next_attempt_at=None)
        else:
            status = "pending"
            wait = schedule[claimed.attempt - 1]
            if outcome.retry_after is not None:
                wait = outcome.retry_after
            fields.update(next_attempt_at=now + timedelta(seconds=wait))
        changed = WebhookDelivery.update(**fields).where(
            (WebhookDelivery.id == claimed.delivery_id) & (WebhookDelivery.lease_token == claimed.lease_token)
        ).execute()
        if not changed:
            return None
        DeliveryAttempt.create(
            delivery=claimed.delivery_id, number=claimed.attempt, started_at=started_at,
            succeeded=outcome.succeeded, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
            response_excerpt=outcome.excerpt, error=outcome.error[:500],
        )
        if outcome.succeeded:
            if endpoint.failing_since is not None:  # as it was when claimed
                WebhookEndpoint.update(failing_since=None).where(
                    (WebhookEndpoint.id == endpoint.id) & WebhookEndpoint.failing_since.is_null(False)).execute()
        else:
            WebhookEndpoint.update(failing_since=now).where(
                (WebhookEndpoint.id == endpoint.id) & WebhookEndpoint.failing_since.is_null()).execute()
            current = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint.id)
            reason = None
            if outcome.status_code == 410:
                reason = f"Disabled on {now:%Y-%m-%d %H:%M} UTC: the endpoint answered 410 Gone."
            elif current and current.failing_since and now - current.failing_since >= FAILING_DISABLES_AFTER:
                reason = (f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery failed for 5 days "
                          f"(since {current.failing_since:%Y-%m-%d %H:%M} UTC; last: {outcome.error[:200]}).")
            if current and current.enabled and reason:
                WebhookEndpoint.update(enabled=False, disabled_reason=reason, disabled_at=now).where(
                    WebhookEndpoint.id == endpoint.id).execute()
                audit.record("webhook.disabled", partner=Application.get_by_id(current.application_id).partner_id,
                             actor="platform", target=current.public_id, detail=reason)
    return status


def worker_name() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}"


def beat(name: str | None = None, *, now: datetime | None = None) -> None:
    """Record that this worker process is alive (and forget workers silent for a day)."""
    now = now or utcnow()
    name = name or worker_name()
    with write_transaction():
        changed = WorkerHeartbeat.update(last_seen_at=now).where(WorkerHeartbeat.worker == name).execute()
        if not changed:
            WorkerHeartbeat.create(worker=name, last_seen_at=now)
        WorkerHeartbeat.delete().where(WorkerHeartbeat.last_seen_at < now - timedelta(days=1)).execute()


def worker_last_seen() -> datetime | None:
    """When any delivery worker last went round its loop (naive UTC), or None if never."""
    row = WorkerHeartbeat.select(WorkerHeartbeat.last_seen_at).order_by(WorkerHeartbeat.last_seen_at.desc()).first()
    return row.last_seen_at if row else None


def reencrypt_endpoint_secrets() -> int:
    """Re-encrypt every endpoint's signing secrets (current and previous) under the first
    LOYALTY_ENCRYPTION_KEY; returns how many endpoints were rewritten, all or none."""
    box = secret_box()
    count = 0
    with write_transaction():
        for row in WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.secret_ciphertext,
                                          WebhookEndpoint.previous_secret_ciphertext).order_by(WebhookEndpoint.id):
            fields = {"secret_ciphertext": box.rotate(row.secret_ciphertext)}
            if row.previous_secret_ciphertext:
                fields["previous_secret_ciphertext"] = box.rotate(row.previous_secret_ciphertext)
            WebhookEndpoint.update(**fields).where(WebhookEndpoint.id == row.id).execute()
            count += 1
    return count
