"""Shared fixtures: an app on a fresh database and its test client, and a live server
(the real `loyalty-portal serve`, gunicorn on a loopback port).

Both engines
------------
Every test that uses `app` (or `engine` / `database_url`) runs on SQLite. It runs on
PostgreSQL too when its behaviour depends on SQL: ledgers and balances, idempotency,
races, migrations, uniqueness, lists and paging, the gate's lookups of keys, secrets and
nonces. The rule:

- every test under `tests/api/`, `tests/domain/` and `tests/reliability/` runs on both
  (BOTH_ENGINES_DIRS), and so does a module elsewhere with `pytestmark =
  pytest.mark.both_engines` (tests/test_migrations.py);
- `@pytest.mark.sqlite_only` (on a test, or as a module's `pytestmark`) keeps a test in
  those directories on SQLite alone. It is for input validation and for what never
  reaches SQL: request parsing, header and signature checks, error shapes, documents.
  Say why in a comment beside it;
- `@pytest.mark.postgres_only` runs a test on PostgreSQL alone.

The ids read `test_name[sqlite]` and `test_name[postgres]`. PostgreSQL comes from
`LOYALTY_TEST_DATABASE_URL` (e.g. postgresql://postgres@127.0.0.1:5432/test; the user
must be allowed to CREATE DATABASE). Without it, or when it does not answer, the
PostgreSQL runs skip with the reason; under `CI=true` they fail instead. `-m "not
postgres"` deselects them.

Cheap fixtures
--------------
- A test's database is migrated once per session, not per test: SQLite tests get a copy
  of a migrated template file; PostgreSQL tests get a database cloned from a migrated
  template, emptied (every row deleted, sequences reset) when the test ends and handed
  to the next test, since cloning costs two checkpoints of the whole server.
- Passwords are hashed with `LOYALTY_PASSWORD_HASHING=fast` (argon2 at its minimum cost)
  by the `app` fixture and by every server and CLI subprocess `LiveServer` starts; the
  default policy is tested on its own (tests/web/test_auth.py). API credentials
  (tests/api/helpers.py) have no password at all.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from portal import create_app, db
from portal.domain import request_log

TESTS_DIR = Path(__file__).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ENGINES = ("sqlite", "postgres")
BOTH_ENGINES_DIRS = ("api", "domain", "reliability")
PG_TEST_URL = os.environ.get("LOYALTY_TEST_DATABASE_URL", "").strip()


def pytest_configure(config):
    config.addinivalue_line("markers", "both_engines: run on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "postgres_only: run on PostgreSQL alone")
    config.addinivalue_line("markers", "sqlite_only: run on SQLite alone, even in a both-engines directory")


def _engines_for(definition) -> tuple[str, ...] | None:
    """Which engines a test runs on, or None for the plain SQLite default."""
    if definition.get_closest_marker("sqlite_only"):
        return None
    if definition.get_closest_marker("postgres_only"):
        return ("postgres",)
    if definition.get_closest_marker("both_engines"):
        return ENGINES
    parts = Path(str(definition.path)).resolve().relative_to(TESTS_DIR.resolve()).parts
    if len(parts) > 1 and parts[0] in BOTH_ENGINES_DIRS:
        return ENGINES
    return None


def pytest_generate_tests(metafunc):
    if "engine" not in metafunc.fixturenames:
        return
    engines = _engines_for(metafunc.definition)
    if engines is None:
        return
    params = [pytest.param(name, marks=[pytest.mark.postgres] if name == "postgres" else [], id=name)
              for name in engines]
    metafunc.parametrize("engine", params, indirect=True, scope="function")


class PostgresDatabases:
    """Migrated PostgreSQL databases for tests, each with no rows.

    The first is `CREATE DATABASE … TEMPLATE` a copy of one migrated once per session;
    when its test ends, `release` empties it (every row deleted, every sequence back at
    its start) and the next test gets it. Cloning forces two checkpoints of the whole
    server, flushing what every earlier test wrote (about half a second a test on this
    machine); emptying a handful of small tables takes a few milliseconds. A database
    that cannot be emptied is dropped instead. Names carry the pytest process id so that
    several test sessions on one server never touch each other's databases.
    """

    def __init__(self, admin_url: str):
        import psycopg2

        self.admin_url = admin_url
        self.psycopg2 = psycopg2
        self.prefix = f"loyalty_t{os.getpid()}_"
        self.counter = itertools.count(1)
        self.template: str | None = None
        self.emptying_sql = ""
        self.schema_fingerprint = ""
        self.free: list[str] = []  # emptied databases, ready for the next test
        self.admin = psycopg2.connect(admin_url, connect_timeout=5)
        self.admin.autocommit = True
        # PostgreSQL 15 copies a template through the WAL by default; for a small template
        # copying the files is several times faster.
        self.copy_strategy = " STRATEGY FILE_COPY" if self.admin.server_version >= 150000 else ""
        self._drop_leftovers_of_dead_sessions()

    def url_for(self, name: str) -> str:
        base = self.admin_url.split("?", 1)
        head = base[0].rsplit("/", 1)[0]
        return f"{head}/{name}" + (f"?{base[1]}" if len(base) > 1 else "")

    def execute(self, sql: str, params=None) -> list:
        with self.admin.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def _drop_leftovers_of_dead_sessions(self) -> None:
        for (name,) in self.execute("SELECT datname FROM pg_database WHERE datname LIKE 'loyalty_t%%'"):
            match = re.match(r"loyalty_t(\d+)_", name)
            if match and not _pid_alive(int(match.group(1))):
                self.drop(name)

    def _ensure_template(self) -> str:
        if self.template is None:
            name = f"{self.prefix}template"
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.execute(f'CREATE DATABASE "{name}"')
            migrated = db.open_database(self.url_for(name))
            try:
                db.migrate(migrated)
                self.emptying_sql = _emptying_sql(migrated)
                self.schema_fingerprint = migrated.execute_sql(SCHEMA_FINGERPRINT_SQL).fetchone()[0]
            finally:
                migrated.close_all()
            self.template = name
        return self.template

    def create(self) -> str:
        """A migrated database with no rows; returns its URL (give it back with `release`)."""
        template = self._ensure_template()
        if self.free:
            return self.free.pop()
        name = f"{self.prefix}{next(self.counter)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{self.copy_strategy}')
        return self.url_for(name)

    def release(self, url: str) -> None:
        """Empty a database from `create` for the next test. One whose schema the test
        changed (a trigger, a function, a column) is dropped instead, as is one that
        cannot be emptied."""
        name = _database_name(url)
        request_log.discard()  # records still buffered belong to this database
        try:
            # Whatever the test left connected (a thread's connection, a killed server's
            # backend) must not hold a lock on the rows about to go.
            self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn = self.psycopg2.connect(url, connect_timeout=5)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(SCHEMA_FINGERPRINT_SQL)
                    if cur.fetchone()[0] != self.schema_fingerprint:
                        raise LookupError("the test changed the schema")
                    cur.execute("SET LOCAL lock_timeout = '10s'")
                    cur.execute(self.emptying_sql)
            finally:
                conn.close()
        except (self.psycopg2.Error, LookupError):
            self.drop(name)
            return
        self.free.append(url)

    def create_empty(self) -> str:
        """A new database with no tables (for migration tests); drop it after."""
        name = f"{self.prefix}{next(self.counter)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop(self, name_or_url: str) -> None:
        name = _database_name(name_or_url)
        request_log.discard()  # a flush into a dropped database would fail (and say so)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.free = [url for url in self.free if _database_name(url) != name]

    def close(self) -> None:
        for (name,) in self.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                    (self.prefix.replace("_", "\\_") + "%",)):
            self.drop(name)
        self.admin.close()


# Everything in a database a test might change besides its rows: tables, indexes, views and
# sequences, columns and their defaults, constraints, triggers, functions, types, the
# database's own settings. Two databases with the same digest have the same schema.
SCHEMA_FINGERPRINT_SQL = """
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
    SELECT 'class ' || relname || ' ' || relkind::text
      FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
           || ' ' || attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'index ' || indexrelid::regclass || ' ' || pg_get_indexdef(indexrelid)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'function ' || oid::regprocedure FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'setting ' || array_to_string(setconfig, ' ') FROM pg_db_role_setting
     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT 'connections ' || datallowconn::text || ' ' || datconnlimit::text
      FROM pg_database WHERE datname = current_database()
) AS schema (item)
"""


def _database_name(name_or_url: str) -> str:
    return name_or_url.split("?", 1)[0].rsplit("/", 1)[-1]


def _emptying_sql(migrated) -> str:
    """SQL that deletes every row of a migrated PostgreSQL database (children before their
    parents, so no foreign key objects) and restarts its sequences, in one transaction.
    peewee-migrate's own history stays: the database remains migrated."""
    import peewee

    from portal.models import ALL_MODELS

    tables = {name for name in migrated.get_tables() if name != "migratehistory"}
    known = [model._meta.table_name for model in reversed(peewee.sort_models(ALL_MODELS))]
    assert tables == set(known), f"the migrated tables are not the models' tables: {sorted(tables ^ set(known))}"
    sequences = migrated.execute_sql(
        "SELECT c.relname, s.seqstart FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'migratehistory%%'").fetchall()
    statements = [f'DELETE FROM "{table}"' for table in known]
    statements += [f"SELECT setval('\"{name}\"', {start}, false)" for name, start in sequences]
    return ";\n".join(statements)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_postgres_unavailable: str | None = None


@pytest.fixture(scope="session")
def postgres_databases():
    """The session's PostgreSQL database factory; skips (fails under CI=true) without one."""
    global _postgres_unavailable
    if not PG_TEST_URL:
        _postgres_unavailable = "PostgreSQL tests skipped: LOYALTY_TEST_DATABASE_URL is not set"
    else:
        try:
            factory = PostgresDatabases(PG_TEST_URL)
        except Exception as exc:  # the driver's message is the useful reason
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            _postgres_unavailable = f"PostgreSQL tests skipped: cannot use {PG_TEST_URL}: {first}"
        else:
            yield factory
            factory.close()
            return
    if IN_CI:
        pytest.fail(_postgres_unavailable.replace("skipped", "cannot run under CI=true"), pytrace=False)
    pytest.skip(_postgres_unavailable)


@pytest.fixture
def engine(request) -> str:
    """`sqlite` or `postgres`: the engine this run of the test uses (SQLite unless the test
    opted in to both engines; see the module docstring)."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres":
        request.getfixturevalue("postgres_databases")
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once for the session, for `database_url` to copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "loyalty.db"
    migrated = db.open_database(f"sqlite:///{path}")
    try:
        db.migrate(migrated)
    finally:
        migrated.close()
    # Out of WAL mode, with the WAL folded into the file: the file alone is then the whole
    # database, and a plain copy of it is complete. (Each copy goes back to WAL when the
    # app first connects to it.)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def database_url(request, engine, tmp_path) -> str:
    """The URL of a migrated database with no rows, this test's own, on its engine: a copy
    of the session's SQLite template in tmp_path, or a PostgreSQL database that nothing
    else uses until the test ends."""
    if engine == "sqlite":
        path = tmp_path / "loyalty.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    factory = request.getfixturevalue("postgres_databases")
    url = factory.create()
    yield url
    factory.release(url)


@pytest.fixture(scope="session")
def signing_vectors() -> dict:
    """The worked signing cases from the design, copied into the repo."""
    return json.loads((TESTS_DIR / "signing-vectors.json").read_text())


@pytest.fixture
def app(tmp_path, database_url):
    """The app on this test's migrated database (a SQLite file in its own data dir, or a
    PostgreSQL database when the test runs on both engines), hashing passwords cheaply."""
    application = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                              "PASSWORD_HASHING": "fast"})
    yield application
    request_log.discard()  # request-log records not flushed by the test belong to its database
    db.close_all()


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`loyalty-portal serve` in a subprocess, on its own data dir and port.

    The server and every command `cli` runs hash passwords with
    LOYALTY_PASSWORD_HASHING=fast, and keys may make a million calls a minute, unless `env`
    says otherwise.
    """

    def __init__(self, data_dir: Path, *, workers: int = 1, env: dict | None = None, serve_args: tuple = ()):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_PASSWORD_HASHING": "fast",
                    # A session's tests share the demo keys of one server: the per-key limit
                    # (600 a minute by default) is tested on its own (tests/reliability/test_rate_limits.py).
                    "LOYALTY_RATE_LIMIT_TEST": "1000000", "LOYALTY_RATE_LIMIT_PROD": "1000000"}
        self.env.pop("LOYALTY_DATABASE_URL", None)  # a file database in data_dir unless `env` says
        self.env.update(env or {})
        self.workers = workers
        self.serve_args = tuple(serve_args)  # e.g. ("--no-worker",)
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> "LiveServer":
        """Start (or restart, on the same port and database) and wait for /healthz."""
        self.log = open(self.log_path, "ab")
        # Its own process group, so `kill()` takes the workers down with the master.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(self.port),
             "--workers", str(self.workers), *self.serve_args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not answer /healthz within 30 s")

    def stop(self) -> None:
        """End a server its test is done with: SIGKILL, as `kill()`. Nothing is in flight
        by then, and gunicorn's own shutdown takes a second or more (the graceful one,
        SIGTERM, waits for idle keep-alive connections too)."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reap_group()
        if getattr(self, "log", None):
            self.log.close()

    def _reap_group(self) -> None:
        # Workers orphaned by a killed master must not outlive the test.
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run a `loyalty-portal` command against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "portal.cli", *args], env=self.env, input=stdin,
            capture_output=True, text=True, timeout=60,
        )

    def demo(self) -> dict:
        """A fresh demo partner (program, application, a test and a prod key with every scope)."""
        result = self.cli("demo", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    @property
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One real server for the session; tests isolate themselves with `live_server.demo()`."""
    server = LiveServer(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()


# -- browsers ---------------------------------------------------------------------------
# One Playwright session for the whole run: a second sync_playwright() inside the first
# one's event loop fails, so every browser test uses these fixtures.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium_path() -> str | None:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (skipped when absent, except in CI)."""
    path = _chromium_path()
    if path is None:
        message = f"Chromium not found at {CHROMIUM}: browser journeys need the system Chromium"
        if IN_CI:
            pytest.fail(message)
        print(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (own cookies) with clipboard access, on the live server."""
    origin = live_server.url
    context = browser.new_context(base_url=origin, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    context.set_default_timeout(10_000)
    page = context.new_page()
    # Anything the browser complains about (a CSP refusal, a script error) fails the test.
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture
def no_js_page(browser, live_server):
    """A browser context with JavaScript turned off."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
