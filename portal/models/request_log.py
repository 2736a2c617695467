"""The request log (DESIGN.md §11): one row per /v1 request, and daily counts beside it.

`RequestRecord` keeps what a partner needs to see why a call failed, never a body, a key,
a secret, a signature or an OTP code. Its owner columns (`partner_id`, `application_id`,
`api_key_id`) are plain integers, not foreign keys: a log row must never stop an
application or key from being deleted, and a batch of rows written a second after the
request must not fail because one of them names a row deleted meanwhile. Rows whose
application never resolved (no key, no App ID we know) keep them NULL.

`RequestDayCount` is the roll-up the usage views read: requests succeeded and failed per
(application, key, mode, UTC day), added to in the same transaction as the rows they count
(see portal.domain.request_log for why roll-ups and which indexes).
"""

from __future__ import annotations

import peewee

from portal.models.base import BaseModel


class RequestRecord(BaseModel):
    """One /v1 request, accepted or refused."""

    id = peewee.BigAutoField()
    created_at = peewee.DateTimeField(index=True)  # when it was answered (UTC); the purge uses the index
    request_id = peewee.CharField(max_length=32, index=True)
    partner_id = peewee.IntegerField(null=True)
    application_id = peewee.IntegerField(null=True)
    api_key_id = peewee.IntegerField(null=True)
    key_masked = peewee.CharField(max_length=40, null=True)  # `test_sk_abcd…wxyz`, when the key resolved
    mode = peewee.CharField(max_length=4, null=True)
    method = peewee.CharField(max_length=10)
    route = peewee.CharField(max_length=200, null=True)  # `/v1/members/{member_id}`; NULL for no route
    path = peewee.CharField(max_length=1000)
    status = peewee.SmallIntegerField()
    error_code = peewee.CharField(max_length=64, null=True)
    error_message = peewee.TextField(null=True)
    latency_ms = peewee.FloatField()
    client_ip = peewee.CharField(max_length=64)
    idempotency_key = peewee.CharField(max_length=255, null=True)
    replayed = peewee.BooleanField(default=False)
    user_agent = peewee.CharField(max_length=300, null=True)
    canonical_string = peewee.TextField(null=True)  # for invalid_signature only

    class Meta:
        table_name = "request_record"
        indexes = (
            (("application_id", "created_at"), False),
            (("api_key_id", "created_at"), False),
        )

    @property
    def succeeded(self) -> bool:
        return self.status < 400


class RequestDayCount(BaseModel):
    """Requests per (application, key, mode, day): the usage chart's and counters' source.
    `api_key_id` is 0 when no key resolved (so the unique index also covers those)."""

    application_id = peewee.IntegerField()
    partner_id = peewee.IntegerField()
    api_key_id = peewee.IntegerField()
    mode = peewee.CharField(max_length=4)
    day = peewee.DateField()
    succeeded = peewee.IntegerField(default=0)
    failed = peewee.IntegerField(default=0)

    class Meta:
        table_name = "request_day_count"
        indexes = (
            (("application_id", "day", "api_key_id", "mode"), True),
            (("partner_id", "day"), False),
        )
