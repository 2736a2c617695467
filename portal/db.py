"""The database: one proxy every model binds to, its connection life cycle, migrations.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, so the
portal and several server workers can share one file. PostgreSQL is plugged in through
`LOYALTY_DATABASE_URL=postgresql://…` without touching the models.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect as connect_url

database = peewee.DatabaseProxy()
log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "synchronous": "normal",  # safe in WAL mode: a crash loses no committed transaction
}


def open_database(url: str) -> peewee.Database:
    """Make (but do not connect) the database object for a URL."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        db = connect_url(url, pragmas=SQLITE_PRAGMAS, timeout=10)
    elif scheme in ("postgresql", "postgres"):
        db = connect_url(url.replace("postgres://", "postgresql://", 1), autorollback=True)
    else:  # load_settings refuses these first; kept for direct callers
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    return db


def bind(db: peewee.Database) -> peewee.Database:
    """Point the shared proxy (and so every model) at `db`."""
    database.initialize(db)
    return db


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


@contextmanager
def write_transaction():
    """A transaction that takes the write lock up front on SQLite.

    `BEGIN IMMEDIATE` makes two concurrent writers queue on the busy timeout instead of
    both reading under a shared lock and then deadlocking when they upgrade. PostgreSQL
    uses an ordinary transaction; its row locks and conditional updates do the rest.
    """
    if is_sqlite():
        with database.obj.atomic("IMMEDIATE") as txn:
            yield txn
    else:
        with database.atomic() as txn:
            yield txn


def init_app(app) -> None:
    """Connect per request, and close even when the view raised."""

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if not database.is_closed():
            database.close()


def migrate(db: peewee.Database | None = None) -> list[str]:
    """Create or upgrade the schema; returns the names of the migrations applied."""
    from peewee_migrate import Router

    db = db or database.obj
    # peewee-migrate logs every step at INFO; the CLI prints its own summary instead.
    logging.getLogger("peewee_migrate").setLevel(logging.WARNING)
    with _connected(db):
        router = Router(db, migrate_dir=str(MIGRATIONS_DIR), ignore=["basemodel"])
        pending = list(router.diff)
        if pending:
            router.run()
    return pending


@contextmanager
def _connected(db: peewee.Database):
    opened = db.connect(reuse_if_open=True)
    try:
        yield db
    finally:
        if opened:
            db.close()
