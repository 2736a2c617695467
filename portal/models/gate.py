"""What the /v1 gate keeps between requests, in the database so that every server
process and every instance sharing the database agrees."""

from __future__ import annotations

import peewee

from portal.models.accounts import Application
from portal.models.base import BaseModel, utcnow


class Nonce(BaseModel):
    """A nonce seen for an application; the unique index makes a replay fail to insert."""

    application = peewee.ForeignKeyField(Application, on_delete="CASCADE")
    nonce = peewee.CharField(max_length=64)
    expires_at = peewee.DateTimeField(index=True)

    class Meta:
        indexes = ((("application", "nonce"), True),)


class IdempotencyRecord(BaseModel):
    """A POST's Idempotency-Key, scoped to (application, mode), with its stored response."""

    application = peewee.ForeignKeyField(Application, on_delete="CASCADE")
    mode = peewee.CharField(max_length=4)
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)  # SHA-256 of method, path and body
    state = peewee.CharField(max_length=12, default="in_progress")  # in_progress | done
    status_code = peewee.IntegerField(null=True)
    response_body = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(index=True)

    class Meta:
        indexes = ((("application", "mode", "key"), True),)


class RateCounter(BaseModel):
    """Requests counted in one fixed window for one subject (an API key, or an address
    reporting exposed keys): `INSERT … ON CONFLICT DO UPDATE SET n = n + 1 RETURNING n`
    counts atomically in every process sharing the database (used without Redis)."""

    subject = peewee.CharField(max_length=80)
    window_start = peewee.BigIntegerField(index=True)  # unix seconds
    n = peewee.IntegerField(default=0)

    class Meta:
        table_name = "rate_counter"
        indexes = ((("subject", "window_start"), True),)
