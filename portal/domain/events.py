"""Events for webhooks (DESIGN.md §12): the outbox.

`emit(application, mode, type, data)` is called inside the transaction of the change it
reports. It writes the event (its body exactly as it will be sent and signed) and one
pending delivery for every enabled endpoint of that application and mode that wants the
type, so the change and its event commit together or not at all. The delivery worker
(`portal.domain.webhooks`) posts them after commit.

`data` is the API object the event is about, already serialized by its caller (the API's
`*_json` functions live in portal.api, which the domain does not import).
"""

from __future__ import annotations

import json

from portal.db import database, write_transaction
from portal.domain import DomainError
from portal.models import Application, WebhookDelivery, WebhookEndpoint, WebhookEvent, isoformat, new_public_id, utcnow

EVENT_TYPES = (
    "member.created", "member.updated", "member.verified",
    "stamps.added", "stamps.redeemed",
    "cashback.credited", "cashback.redeemed",
    "claim.created", "claim.approved", "claim.rejected",
    "referral.applied",
    "api_key.created", "api_key.rolled", "api_key.revoked", "api_key.expiring", "api_key.exposed",
    "app_secret.regenerated",
)
TEST_EVENT_TYPE = "webhook.test"  # sent from the portal to one endpoint, never subscribed to


def event_body(event_id: str, type: str, created_at, mode: str, app_id: str, data: dict) -> str:
    """The JSON body of an event, as sent and signed."""
    return json.dumps(
        {"id": event_id, "type": type, "created_at": isoformat(created_at), "mode": mode,
         "app_id": app_id, "data": data},
        separators=(",", ":"), ensure_ascii=False,
    )


def emit(application, mode: str, type: str, data: dict) -> None:
    """Record event `type` of `application` (a model or its row id) in `mode`, with `data`
    the API object it is about, for every endpoint that wants it. Call it inside the
    transaction of the change; without one it makes its own (event and deliveries still
    commit together). Writes nothing when no endpoint wants the event."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if mode not in ("test", "prod"):
        raise ValueError(f"unknown mode {mode!r}")
    app_pk = application.id if isinstance(application, Application) else int(application)
    if database.obj.in_transaction():
        # Inside the change's transaction (the usual case): a failure here rolls the whole
        # transaction back, so no savepoint of its own is needed.
        _emit(application, app_pk, mode, type, data)
        return
    # Its own transaction takes the write lock first (SQLite: a read that later writes
    # would fail, not wait, when another connection wrote in between).
    with write_transaction():
        _emit(application, app_pk, mode, type, data)


_ENDPOINTS_SQL: dict[type, str] = {}


def _emit(application, app_pk: int, mode: str, type: str, data: dict) -> None:
    # On every write of the API: rendered to SQL once per engine (building the peewee
    # query cost more than the rest of a write with no endpoint).
    engine = database.obj.__class__
    sql = _ENDPOINTS_SQL.get(engine)
    if sql is None:
        sql = _ENDPOINTS_SQL[engine] = WebhookEndpoint.select().where(
            (WebhookEndpoint.application == 0) & (WebhookEndpoint.mode == "")
            & (WebhookEndpoint.enabled == True)  # noqa: E712 (peewee expression)
        ).sql()[0]
    rows = database.execute_sql(sql, (app_pk, mode, True)).fetchall()
    endpoints = [endpoint for endpoint in map(WebhookEndpoint.from_row, rows) if endpoint.wants(type)]
    if not endpoints:
        return
    app = application if isinstance(application, Application) else Application.get_by_id(app_pk)
    record_event(app, mode, type, data, endpoints)


def record_event(app: Application, mode: str, type: str, data: dict, endpoints) -> WebhookEvent:
    """Write the event and one pending delivery per endpoint (in the caller's transaction)."""
    now = utcnow()
    event_id = new_public_id("evt_")
    event = WebhookEvent.create(
        public_id=event_id, application=app.id, mode=mode, type=type, created_at=now,
        body=event_body(event_id, type, now, mode, app.app_id, data),
    )
    WebhookDelivery.insert_many(
        [{"event": event.id, "endpoint": endpoint.id, "status": "pending", "attempts": 0,
          "next_attempt_at": now, "created_at": now, "last_error": ""} for endpoint in endpoints]
    ).execute()
    return event


def with_event(application, modes, type: str, change, serialize):
    """Run `change()` and emit `type` with `serialize(result)` as its data, in one
    transaction: both commit or neither does. `modes` is a mode or a tuple of them (an
    App Secret belongs to both). Returns `(result, data)`.

    A DomainError that `change` raises (after its own writes rolled back, or after it
    deliberately committed something, like a counted OTP try) passes through unchanged and
    emits nothing.
    """
    refusal = None
    with write_transaction():
        try:
            result = change()
        except DomainError as exc:
            refusal = exc
        else:
            data = serialize(result)
            for mode in (modes,) if isinstance(modes, str) else modes:
                emit(application, mode, type, data)
    if refusal is not None:
        raise refusal
    return result, data
