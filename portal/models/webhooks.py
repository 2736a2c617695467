"""Webhooks (DESIGN.md §12): partners' endpoints, the events outbox, deliveries and their
attempts, and the delivery worker's heartbeat.

An event and its deliveries are written in the same transaction as the change they report
(`portal.domain.events.emit`); the worker (`portal.domain.webhooks`) posts them after
commit. Endpoint secrets are encrypted at rest like App Secrets.
"""

from __future__ import annotations

import peewee

from portal.models.accounts import Application, User
from portal.models.base import BaseModel, utcnow


class WebhookEndpoint(BaseModel):
    """A partner's URL that receives the events of one application and one mode."""

    public_id = peewee.CharField(max_length=24, unique=True)  # we_…
    application = peewee.ForeignKeyField(Application, backref="webhook_endpoints", on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)  # test | prod
    url = peewee.TextField()
    description = peewee.CharField(max_length=200, default="")
    event_types = peewee.TextField(default="")  # space-separated; empty means every type
    secret_ciphertext = peewee.TextField()
    previous_secret_ciphertext = peewee.TextField(null=True)  # still signs until it expires
    previous_secret_expires_at = peewee.DateTimeField(null=True)
    enabled = peewee.BooleanField(default=True)
    disabled_reason = peewee.TextField(default="")  # set when the platform disabled it
    disabled_at = peewee.DateTimeField(null=True)
    failing_since = peewee.DateTimeField(null=True)  # first failed attempt since the last success
    created_at = peewee.DateTimeField(default=utcnow)
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")

    @property
    def event_type_list(self) -> list[str]:
        return self.event_types.split()

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_type_list


class WebhookEvent(BaseModel):
    """One event (`evt_…`): its body is stored exactly as it is sent and signed."""

    public_id = peewee.CharField(max_length=24, unique=True)  # evt_…
    application = peewee.ForeignKeyField(Application, backref="webhook_events", on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    type = peewee.CharField(max_length=40)
    body = peewee.TextField()  # the JSON body: id, type, created_at, mode, app_id, data
    created_at = peewee.DateTimeField(default=utcnow, index=True)


class WebhookDelivery(BaseModel):
    """One event on its way to one endpoint: pending until it succeeds or runs out of
    retries. A worker leases it (`lease_token`, `locked_until`) for one attempt."""

    event = peewee.ForeignKeyField(WebhookEvent, backref="deliveries", on_delete="CASCADE")
    endpoint = peewee.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    status = peewee.CharField(max_length=12, default="pending")  # pending | succeeded | failed
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(null=True)
    locked_until = peewee.DateTimeField(null=True)
    lease_token = peewee.CharField(max_length=32, null=True)
    last_status_code = peewee.IntegerField(null=True)
    last_error = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


class DeliveryAttempt(BaseModel):
    """One POST of a delivery: what came back (status, the first 2 KiB), how long it took,
    or why it failed."""

    delivery = peewee.ForeignKeyField(WebhookDelivery, backref="attempt_rows", on_delete="CASCADE")
    number = peewee.IntegerField()
    started_at = peewee.DateTimeField(default=utcnow)
    succeeded = peewee.BooleanField(default=False)
    status_code = peewee.IntegerField(null=True)
    latency_ms = peewee.IntegerField(default=0)
    response_excerpt = peewee.TextField(default="")
    error = peewee.TextField(default="")


class WorkerHeartbeat(BaseModel):
    """When a delivery worker process last went round its loop."""

    worker = peewee.CharField(max_length=120, unique=True)  # host:pid
    last_seen_at = peewee.DateTimeField(default=utcnow)
