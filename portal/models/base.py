"""The base model and the few field helpers every model shares."""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timezone

import peewee

from portal.db import database

_ID_ALPHABET = string.ascii_letters + string.digits


def utcnow() -> datetime:
    """Naive UTC now: every stored time is UTC, and naive on both engines."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_public_id(prefix: str, length: int = 20) -> str:
    """A public, unguessable id such as `mem_4fQ…`: the API never shows row numbers.

    Each character is uniform over the 62 letters and digits: random bytes from 248 up
    (4 x 62) are skipped, the rest taken modulo 62 (one `token_bytes` call instead of
    twenty `secrets.choice` calls, which cost ~0.3 ms on every ledger write)."""
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(_ID_ALPHABET[byte % 62] for byte in secrets.token_bytes(length + 8) if byte < 248)
    return prefix + "".join(chars[:length])


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, as every API response writes times."""
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat() + "Z"


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False

    @classmethod
    def from_row(cls, row):
        """The model of a row of `SELECT *` (its columns in field order) as stored: no fresh
        defaults (a new public id), nothing dirty. On hot paths, where a statement rendered
        once runs with `execute_sql`: iterating a peewee query costs more than running it."""
        return cls(__no_default__=True,
                   **{field.name: field.python_value(value) for field, value in zip(cls._meta.sorted_fields, row)})


MODES = ("test", "prod")
