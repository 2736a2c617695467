"""The database: one proxy every model binds to, its connection life cycle, migrations.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, so the
portal and several server workers can share one file. PostgreSQL is plugged in through
`LOYALTY_DATABASE_URL=postgresql://…` without touching the models; each server process
keeps a small pool of connections to it (checked for life on every check-out, so a
database that restarted is reconnected to without restarting the server).

A request takes a connection when it first runs a query (peewee connects on demand) and
gives it back in `teardown_request`, which runs even when the view raised: to the pool on
PostgreSQL; on SQLite each server thread keeps its own connection open for its next
request (opening one and setting its PRAGMAs cost more than most requests' queries), with
anything left of a transaction rolled back. A database that cannot be reached raises one
of UNAVAILABLE_ERRORS; the API answers it with its 503 JSON and the portal with its 503
page (this module knows nothing of either).

Durability (docs/production.md, "Durability"): on SQLite every commit is flushed to disk
before it returns (`synchronous=FULL`; `write_transaction` flushes its commit itself, just
after the writer lock, see there), so a ledger entry answered 201 survives power loss or
an OS crash. Only writes that are ephemeral by nature opt out, through
`ephemeral_write()`: the gate's nonces. PostgreSQL's default `synchronous_commit=on` is
durable already.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import parse as parse_url
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase

from portal.config import ConfigError
from portal.logs import get_logger

database = peewee.DatabaseProxy()
log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    # FULL: a commit is on disk when it returns. (NORMAL in WAL mode survives a crash of
    # the process, but power loss or an OS crash may roll back the last commits.)
    "synchronous": "full",
}
SQLITE_EPHEMERAL_SYNCHRONOUS = "normal"  # for `ephemeral_write()`

# Per server process. gunicorn runs `--threads` requests at once per worker, so the pool
# only needs a few more than that; PostgreSQL's own limit (100 by default) is shared by
# every worker of every instance. Override with `?max_connections=N` on the URL.
POOL_MAX_CONNECTIONS = 16
POOL_WAIT_SECONDS = 10  # a request waits this long for a free pooled connection
POOL_STALE_SECONDS = 300  # idle connections older than this are replaced
CONNECT_TIMEOUT_SECONDS = 5  # an unreachable host fails fast instead of hanging a worker

# The errors that mean "the database is not answering right now" (as opposed to a bug):
# a refused or dropped connection, a restart, a lock wait that timed out, a full pool.
UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)


class PostgresPool(PooledPostgresqlDatabase):
    """A connection pool that a forked worker never shares with its parent.

    gunicorn forks its workers after `serve` has migrated the database; a connection
    inherited through fork is one socket used by two processes, so a child forgets the
    inherited ones (without closing them: they are the parent's) and opens its own.
    """

    def __init__(self, *args, **kwargs):
        self._owners: dict[int, threading.Thread] = {}
        super().__init__(*args, **kwargs)

    def forget_inherited_connections(self) -> None:
        self._pool_lock = threading.RLock()
        self._pool_available = threading.Condition(self._pool_lock)
        self._connections = []
        self._in_use = {}
        self._owners = {}
        self._lock = threading.Lock()
        self._state.reset()

    def _connect(self):
        with self._pool_lock:
            if self._max_connections and len(self._in_use) >= self._max_connections:
                self._reclaim_from_finished_threads()
            conn = super()._connect()
            self._owners[self.conn_key(conn)] = threading.current_thread()
            return conn

    def _close(self, conn, close_conn=False):
        with self._pool_lock:
            self._owners.pop(self.conn_key(conn), None)
            super()._close(conn, close_conn)

    def _reclaim_from_finished_threads(self) -> None:
        """A thread that ended without closing its connection (a background job, a test's
        worker thread) would hold a pool slot forever; take those slots back."""
        for key, owner in list(self._owners.items()):
            if not owner.is_alive() and key in self._in_use:
                self._close_raw(self._in_use.pop(key).connection)
                del self._owners[key]


_open_databases: "weakref.WeakSet[peewee.Database]" = weakref.WeakSet()
# SQLite connections a forked child inherited: referenced forever so that the child never
# closes them (closing runs SQLite's clean-up on a handle that is the parent's).
_inherited_sqlite_connections: list = []


def _before_fork() -> None:
    # Idle pooled connections of the parent are no use to a child; close them first so
    # the parent does not keep sockets that a child also holds.
    for db in list(_open_databases):
        if isinstance(db, PostgresPool):
            try:
                db.close_idle()
            except Exception:  # best effort; the child forgets them either way
                pass


def _after_fork_in_child() -> None:
    for db in list(_open_databases):
        if isinstance(db, PostgresPool):
            db.forget_inherited_connections()
        else:  # a SQLite handle must not cross a fork either
            if db._state.conn is not None:
                _inherited_sqlite_connections.append(db._state.conn)
            db._state.reset()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def open_database(url: str) -> peewee.Database:
    """Make (but do not connect) the database object for a URL.

    A URL that cannot be parsed raises `ConfigError` with a one-line message.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        params = parse_url(url, unquote_password=True, unquote_user=True)
    except ValueError as exc:  # e.g. a port that is not a number
        raise ConfigError(f"LOYALTY_DATABASE_URL is not a valid database URL: {exc}") from None
    if scheme == "sqlite":
        name = params.pop("database")
        private_sqlite_file(name)
        params.setdefault("timeout", 10)
        db = peewee.SqliteDatabase(name, pragmas=SQLITE_PRAGMAS, **params)
    elif scheme in ("postgresql", "postgres"):
        if not params.get("database"):
            raise ConfigError("LOYALTY_DATABASE_URL names no database (postgresql://user@host:port/DBNAME)")
        if importlib.util.find_spec("psycopg2") is None:  # peewee's PostgreSQL driver
            raise ConfigError("PostgreSQL needs the psycopg2 driver: pip install 'loyalty-portal[postgres]'")
        name = params.pop("database")
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        db = PostgresPool(
            name,
            max_connections=params.pop("max_connections", POOL_MAX_CONNECTIONS),
            timeout=params.pop("pool_timeout", POOL_WAIT_SECONDS),
            stale_timeout=POOL_STALE_SECONDS,
            **params,
        )
    else:  # load_settings refuses these first; kept for direct callers
        raise ConfigError(f"unsupported database URL scheme {scheme!r}")
    _open_databases.add(db)
    return db


SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_sqlite_file(name: str) -> None:
    """Make the SQLite file (and any -wal/-shm beside it) readable by its owner only.

    A missing file is created empty with mode 0600 before SQLite opens it; SQLite gives
    the -wal and -shm files it creates later the main file's mode. Files left 0644 by an
    older version are tightened. A file another user owns is left alone.
    """
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return  # SQLite reports the missing folder on connect
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        return  # unwritable: connecting will say so
    for suffix in SQLITE_COMPANIONS:
        companion = Path(f"{name}{suffix}")
        try:
            info = companion.stat()
            if info.st_mode & 0o077 and info.st_uid == os.getuid():
                companion.chmod(0o600)
        except OSError:
            continue


def bind(db: peewee.Database) -> peewee.Database:
    """Point the shared proxy (and so every model) at `db`."""
    database.initialize(db)
    return db


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


class SqliteWriter:
    """One SQLite writer at a time, handed over without sleeping.

    Writers wait on SQLite's busy handler otherwise, which sleeps 1, 2, 5, 10 … 100 ms
    between tries: a process that keeps losing the race to another waits far longer than
    the writes take (hundreds of ms at the 99th percentile with two workers). Here the
    threads of a process queue on a lock and the processes on an `flock` of
    `<database file>-writer.lock`; both wake a waiter as soon as the writer is done.
    Taken by the outermost `write_transaction` and by the gate's nonce insert; reentrant.
    A thread already inside a transaction (holding SQLite's lock, maybe) takes only the
    thread lock, so it never waits on another process while holding SQLite's.
    """

    def __init__(self):
        self._lock = threading.RLock()
        self._local = threading.local()
        self._files: dict[tuple[int, str], int | None] = {}

    def __enter__(self):
        self._lock.acquire()
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            db = database.obj
            fd = self._lock_file(db) if not db.in_transaction() else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.fd = fd
        self._local.depth = depth + 1
        return self

    def __exit__(self, *exc_info):
        self._local.depth -= 1
        try:
            if self._local.depth == 0 and self._local.fd is not None:
                fcntl.flock(self._local.fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _lock_file(self, db) -> int | None:
        if not isinstance(db, peewee.SqliteDatabase) or db.database in ("", ":memory:") \
                or db.database.startswith("file:"):
            return None
        key = (os.getpid(), db.database)  # per process: a descriptor is not used across a fork
        if key not in self._files:
            try:
                self._files[key] = os.open(f"{db.database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._files[key] = None  # SQLite's own lock still serialises the writers
        return self._files[key]


SQLITE_WRITE_LOCK = SqliteWriter()


@contextmanager
def write_transaction():
    """A transaction that takes the write lock up front on SQLite.

    `BEGIN IMMEDIATE` makes two concurrent writers queue on the busy timeout instead of
    both reading under a shared lock and then deadlocking when they upgrade. PostgreSQL
    uses an ordinary transaction; its row locks and conditional updates do the rest.

    On SQLite the commit is as durable as `synchronous=FULL` but flushed after the writer
    lock is released (a group commit): the transaction commits with NORMAL, then this
    thread flushes the write-ahead log (`fdatasync`) before returning, so the caller
    answers only once the commit is on disk, while the next writer already runs (one
    flush covers every commit written before it).
    """
    if is_sqlite():
        db = database.obj
        if db.in_transaction():  # a savepoint: the outer transaction holds the lock
            with db.atomic("IMMEDIATE") as txn:
                yield txn
            return
        with SQLITE_WRITE_LOCK, ephemeral_write(), db.atomic("IMMEDIATE") as txn:
            yield txn
        flush_sqlite_log(db)
    else:
        with database.atomic() as txn:
            yield txn


def flush_sqlite_log(db: peewee.SqliteDatabase) -> None:
    """Put every commit written so far to `db` on disk: `fdatasync` of its write-ahead log
    (what `synchronous=FULL` does at each commit, here outside the writer lock)."""
    if db.database in ("", ":memory:") or db.database.startswith("file:"):
        return
    try:
        fd = os.open(f"{db.database}-wal", os.O_RDONLY)
    except FileNotFoundError:  # checkpointed into the database file (synced) and removed
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


@contextmanager
def ephemeral_write():
    """Statements inside commit without waiting for the disk (SQLite `synchronous=NORMAL`).

    For writes whose loss in a power cut or OS crash costs only what docs/production.md
    says: the gate's nonces. Such a commit survives a crash of the server process; power
    loss may undo the ones since the last durable commit (a durable commit flushes the
    write-ahead log, and so every ephemeral write before it, to disk). Inside a
    transaction it changes nothing: the transaction's own commit decides.
    """
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase) or db.in_transaction():
        yield
        return
    conn = db.connection()
    conn.execute(f"PRAGMA synchronous = {SQLITE_EPHEMERAL_SYNCHRONOUS}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous = {SQLITE_PRAGMAS['synchronous']}")


def end_request() -> None:
    """After a request: a SQLite connection stays open for this thread's next request
    (WAL mode: an idle connection holds no lock and no snapshot), with whatever was left of
    a transaction rolled back; a PostgreSQL connection goes back to the pool."""
    db = database.obj
    if isinstance(db, peewee.SqliteDatabase) and not db.is_closed():
        db._state.transactions.clear()
        try:
            if db._state.conn.in_transaction:
                db._state.conn.rollback()
            return
        except sqlite3.Error:
            pass  # not reusable: closed below
    release_connection()


def release_connection() -> None:
    """Give this thread's connection back (to the pool, or close it), whatever its state.

    A connection that broke mid-request (the server restarted, the network dropped) is
    discarded rather than handed to the next request.
    """
    db = database.obj
    if db is None or db.is_closed():
        return
    db._state.transactions.clear()  # the view's transaction already rolled back or died
    try:
        db.close()
    except Exception:
        conn = db._state.conn
        if isinstance(db, PostgresPool):
            with db._pool_lock:
                db._in_use.pop(db.conn_key(conn), None)
            db._close_raw(conn)
        db._state.reset()


def close_database(db: peewee.Database) -> None:
    """Close a database object that is not the bound one (every pooled connection too)."""
    if isinstance(db, PostgresPool):
        db.close_all()
    else:
        db.close()


def close_all() -> None:
    """Close every connection this process holds (the pool's idle ones too)."""
    db = database.obj
    if db is None:
        return
    release_connection()
    if isinstance(db, PostgresPool):
        db.close_all()


def init_app(app) -> None:
    """Give each request's connection back (or keep it, on SQLite) even when the view
    raised (a request connects on its first query)."""

    @app.before_request
    def _keep_sqlite_file_open():
        hold_sqlite_file_open()

    @app.teardown_request
    def _close(exc):
        end_request()


def migrate(db: peewee.Database | None = None) -> list[str]:
    """Create or upgrade the schema; returns the names of the migrations applied.

    On PostgreSQL an advisory lock makes several instances starting at once migrate one
    after the other instead of racing to create the same tables.
    """
    from peewee_migrate import Router

    db = db or database.obj
    # peewee-migrate logs every step at INFO; the CLI prints its own summary instead.
    logging.getLogger("peewee_migrate").setLevel(logging.WARNING)
    with _connected(db), _migration_lock(db), _sqlite_foreign_keys_off(db):
        router = Router(db, migrate_dir=str(MIGRATIONS_DIR), ignore=["basemodel"])
        pending = list(router.diff)
        if pending:
            router.run()
    return pending


@contextmanager
def _sqlite_foreign_keys_off(db: peewee.Database):
    """SQLite changes a column by rebuilding its table (copy, drop, rename); with foreign
    keys enforced, dropping the old table would cascade into every table referencing it.
    SQLite's documented procedure: enforcement off around the change (it cannot change
    inside a transaction, so around the whole run), then check nothing dangles."""
    if not isinstance(db, peewee.SqliteDatabase):
        yield
        return
    db.execute_sql("PRAGMA foreign_keys=OFF")
    try:
        yield
        dangling = db.execute_sql("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise peewee.IntegrityError(f"migration left {len(dangling)} row(s) with a dangling foreign key")
    finally:
        db.execute_sql("PRAGMA foreign_keys=ON")


def known_migrations() -> list[str]:
    """The names of the migrations this version ships, in order."""
    return sorted(path.stem for path in MIGRATIONS_DIR.glob("[0-9]*.py"))


def schema_status(db: peewee.Database | None = None) -> tuple[list[str], list[str], list[str]]:
    """(applied, pending, unknown) migration names, read without changing anything:
    `pending` are shipped but not applied, `unknown` applied but not shipped (a database
    a newer version migrated). A database never migrated has applied == []."""
    db = db or database.obj
    with _connected(db):
        applied: list[str] = []
        if "migratehistory" in db.get_tables():
            applied = [name for (name,) in db.execute_sql("SELECT name FROM migratehistory ORDER BY id")]
    known = known_migrations()
    return applied, [m for m in known if m not in applied], [m for m in applied if m not in known]


def sqlite_path(url: str) -> Path | None:
    """The file a sqlite:/// URL names (None for another engine or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    name = urlsplit(url).path[1:]  # as peewee's URL parser reads it
    if not name or name == ":memory:":
        return None
    return Path(name)


MIGRATION_LOCK_ID = 0x4C6F79616C7479  # "Loyalty": any constant shared by every instance


@contextmanager
def _migration_lock(db: peewee.Database):
    if not isinstance(db, peewee.PostgresqlDatabase):
        yield
        return
    db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))


@contextmanager
def _connected(db: peewee.Database):
    opened = db.connect(reuse_if_open=True)
    try:
        yield db
    finally:
        if opened:
            db.close()


# -- SQLite: one idle connection per process (added for the API's per-request writes) -------

_sqlite_anchor: tuple[int, str, sqlite3.Connection] | None = None
_sqlite_anchor_lock = threading.Lock()


def hold_sqlite_file_open() -> None:
    """Keep one idle connection to the SQLite file open in this process.

    When the last connection to a WAL database closes, SQLite checkpoints the WAL into the
    main file (with an fsync) and deletes it. With a connection per request that happened
    after nearly every request that wrote (each signed API call writes its nonce): ~6 ms a
    request. An idle connection that has read once keeps the WAL in place; automatic
    checkpoints still run, since it holds no read lock between statements. Made lazily in
    each worker (never carried across a fork); only the latest database is held, so a
    test process that opens many files keeps one descriptor.
    """
    global _sqlite_anchor
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase) or db.database in ("", ":memory:"):
        return
    key = (os.getpid(), db.database)
    current = _sqlite_anchor
    if current is not None and current[:2] == key:
        return
    with _sqlite_anchor_lock:
        current = _sqlite_anchor
        if current is not None and current[:2] == key:
            return
        if current is not None and current[0] == key[0]:
            current[2].close()
        try:
            conn = sqlite3.connect(db.database, timeout=10, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error:
            _sqlite_anchor = None  # an unusable file is reported by the request's own connect
            return
        _sqlite_anchor = (*key, conn)


def lock_for_update(query):
    """`SELECT … FOR UPDATE` on PostgreSQL. SQLite has no row locks; there the caller's
    `write_transaction()` already holds the database's write lock."""
    return query.for_update() if is_postgres() else query
