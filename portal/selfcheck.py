"""Is this deployment fit to serve? The checks behind `loyalty-portal check` and `GET /readyz`.

`problems(settings)` lists what is wrong, one sentence each (empty: all is well):

- the database answers;
- its schema is current (every migration this version ships is applied, and none it does
  not know: a database a newer release migrated);
- every stored secret decrypts with the configured `LOYALTY_ENCRYPTION_KEY` (App Secrets,
  two-factor secrets, webhook signing secrets): a retired key dropped too early, or a backup taken under a key
  that is no longer listed, shows here before partners see 503s;
- (`worker=True`, for `/readyz`) when delivery runs, a delivery worker reported within the
  last minute. Delivery "runs" when a worker has reported within the last day (heartbeats
  older than that are forgotten): a deployment that never started one is not held up, one
  whose worker died is.

The sentences name no secret, no key and no row's content; `detail=False` also leaves out
the driver's message (which can name hosts), for answers that leave the machine.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import peewee

from portal.config import Settings
from portal.credentials import SecretBox, SecretUnreadable
from portal.logs import first_line
from portal.models.base import utcnow

# Every encrypted column: (model name in portal.models, field, what it holds). A new
# encrypted column belongs here, so `check` proves the keys still read it.
ENCRYPTED_COLUMNS = (
    ("AppSecret", "ciphertext", "App Secret"),
    ("User", "totp_secret", "two-factor secret"),
    ("WebhookEndpoint", "secret_ciphertext", "webhook signing secret"),
    ("WebhookEndpoint", "previous_secret_ciphertext", "previous webhook signing secret"),
)


WORKER_SILENCE = timedelta(minutes=1)  # DESIGN.md §14: the worker reported within the last minute


def problems(settings: Settings, *, database: peewee.Database | None = None, secrets: bool = True,
             detail: bool = True, worker: bool = False) -> list[str]:
    """What keeps this deployment from serving (see the module docstring); [] when nothing.

    `database` defaults to the one the app bound; `secrets=False` skips the decryption
    pass (readiness probes run often; decrypting every secret is the operator's check)."""
    from portal import db

    database = database or db.database.obj
    try:
        applied, pending, unknown = db.schema_status(database)
    except Exception as exc:  # any driver error: the database does not answer
        reason = f": {first_line(exc)}" if detail else ""
        return [f"the database does not answer{reason}"]
    if not applied:
        return ["the database has no schema (it was never migrated): run loyalty-portal migrate --init"]
    found = []
    if pending:
        found.append(f"the schema is not current: {len(pending)} migration(s) not applied "
                     f"({', '.join(pending)}): run loyalty-portal migrate")
    if unknown:
        found.append(f"the database was migrated by a newer release ({', '.join(unknown)} unknown to this "
                     "version): install that release")
    if secrets and not pending and not unknown:
        found += _undecryptable(settings, database, detail)
    if worker and not pending and not unknown:
        found += _silent_worker(database)
    return found


def _silent_worker(database: peewee.Database) -> list[str]:
    from portal.domain import webhooks

    with _bound(database):
        last = webhooks.worker_last_seen()
    if last is None:
        return []
    silent = utcnow() - last
    if silent <= WORKER_SILENCE:
        return []
    return [f"the webhook delivery worker last reported {int(silent.total_seconds())} s ago: "
            "check that loyalty-portal serve (or loyalty-portal worker) is running"]


def secret_counts(database: peewee.Database | None = None) -> dict[str, int]:
    """How many values each encrypted column holds, by what they are ("App Secret": 3)."""
    from portal import db, models

    database = database or db.database.obj
    counts = {}
    with _bound(database):
        for model_name, field_name, what in ENCRYPTED_COLUMNS:
            model = getattr(models, model_name)
            column = getattr(model, field_name)
            counts[what] = model.select().where(column.is_null(False)).count()
    return counts


def _bound(database: peewee.Database):
    """The models on `database`: as they are when it is the app's own (rebinding them
    would touch every thread's queries), temporarily rebound otherwise."""
    from portal import db, models

    if database is db.database.obj:
        return contextlib.nullcontext()
    return database.bind_ctx(list(models.ALL_MODELS))


def _undecryptable(settings: Settings, database: peewee.Database, detail: bool) -> list[str]:
    from portal import models

    box = SecretBox(settings.encryption_keys)
    found = []
    with _bound(database):
        for model_name, field_name, what in ENCRYPTED_COLUMNS:
            model = getattr(models, model_name)
            column = getattr(model, field_name)
            total = failed = 0
            for (value,) in model.select(column).where(column.is_null(False)).tuples().iterator():
                total += 1
                try:
                    box.decrypt(value)
                except SecretUnreadable:
                    failed += 1
            if failed:
                found.append(
                    f"{failed} of {total} stored {what}(s) cannot be decrypted with LOYALTY_ENCRYPTION_KEY "
                    "(a retired key was dropped, or a backup made under a key no longer listed was restored): "
                    "put the old key back at the end of the list"
                )
    return found
