"""Migrations on both engines: a fresh database migrates, a second run changes nothing, and
the migrated schema is exactly the one the models describe (no drift between a model and
the migration files), compared by introspecting two real databases."""

from __future__ import annotations

import re

import peewee
import pytest

from portal import db
from portal.models import ALL_MODELS

pytestmark = pytest.mark.both_engines


@pytest.fixture
def empty_database(request, engine, tmp_path):
    """A factory of empty databases on this test's engine, closed and dropped afterwards."""
    opened: list[tuple[peewee.Database, str]] = []

    def make(name: str) -> peewee.Database:
        if engine == "sqlite":
            url = f"sqlite:///{tmp_path / (name + '.db')}"
        else:
            url = request.getfixturevalue("postgres_databases").create_empty()
        database = db.open_database(url)
        opened.append((database, url))
        return database

    yield make
    for database, url in opened:
        if isinstance(database, db.PostgresPool):
            database.close_all()
            request.getfixturevalue("postgres_databases").drop(url)
        else:
            database.close()


def test_migrate_creates_every_table_and_a_second_run_applies_nothing(empty_database):
    database = empty_database("fresh")
    applied = db.migrate(database)
    assert applied and applied[0] == "001_initial"
    with database.connection_context():
        tables = set(database.get_tables())
    assert {m._meta.table_name for m in ALL_MODELS} <= tables
    assert db.migrate(database) == []


def test_migrated_schema_matches_the_models(empty_database):
    migrated = empty_database("migrated")
    db.migrate(migrated)
    from_models = empty_database("models")
    with from_models.bind_ctx(ALL_MODELS), from_models.connection_context():
        from_models.create_tables(ALL_MODELS)

    for model in ALL_MODELS:
        table = model._meta.table_name
        want, got = _describe(from_models, table), _describe(migrated, table)
        for aspect in want:
            assert got[aspect] == want[aspect], (
                f"{table}: the migrations' {aspect} differ from the model's. "
                f"Add a migration (missing: {sorted(want[aspect] - got[aspect])}, "
                f"extra: {sorted(got[aspect] - want[aspect])})"
            )


def test_migrations_leave_no_table_the_models_do_not_know(empty_database):
    migrated = empty_database("migrated")
    db.migrate(migrated)
    with migrated.connection_context():
        tables = set(migrated.get_tables())
    known = {m._meta.table_name for m in ALL_MODELS} | {"migratehistory"}
    assert tables - known == set()


def _describe(database: peewee.Database, table: str) -> dict[str, set]:
    """Columns (name, type, nullability), indexes (columns, uniqueness), foreign keys and
    CHECK constraints of one table, in a form both databases can be compared by."""
    with database.connection_context():
        columns = {(c.name, _type(c.data_type), c.null) for c in database.get_columns(table)}
        indexes = {(tuple(i.columns), i.unique) for i in database.get_indexes(table)}
        if isinstance(database, peewee.PostgresqlDatabase):
            # peewee reports "character varying" without its length; ask the catalog.
            columns = set(database.execute_sql(
                "SELECT column_name, data_type, character_maximum_length, is_nullable "
                "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            ).fetchall())
            rows = database.execute_sql(
                "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('c', 'f')", (f'"{table}"',)
            ).fetchall()
            foreign_keys = {d for t, d in rows if t == "f"}
            checks = {d for t, d in rows if t == "c"}
        else:
            foreign_keys = {
                (r[3], r[2], r[4], r[6])  # from, table, to, on_delete
                for r in database.execute_sql(f'PRAGMA foreign_key_list("{table}")').fetchall()
            }
            sql = database.execute_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()[0]
            checks = {re.sub(r"\s+", " ", c) for c in re.findall(r"CHECK \(([^)]*)\)", sql)}
    return {"columns": columns, "indexes": indexes, "foreign keys": foreign_keys, "checks": checks}


def _type(data_type: str) -> str:
    return re.sub(r"\s+", " ", data_type.strip().lower())


def test_making_user_partner_optional_keeps_every_row_that_references_users(empty_database):
    """006 rebuilds the user table on SQLite; sessions, keys' creators and audit entries of
    existing users must come through untouched (no cascade from the rebuild)."""
    from peewee_migrate import Router

    database = empty_database("upgrade")
    with database.connection_context():
        Router(database, migrate_dir=str(db.MIGRATIONS_DIR), ignore=["basemodel"]).run("002_teams")
        now = "2026-01-01 00:00:00"
        database.execute_sql(f"INSERT INTO partner (name, status, created_at) VALUES ('Shop', 'active', '{now}')")
        database.execute_sql("INSERT INTO \"user\" (partner_id, email, password_hash, role, created_at) "
                             f"VALUES (1, 'o@shop.example', 'x', 'owner', '{now}')")
        database.execute_sql("INSERT INTO user_session (user_id, token_hash, created_at, last_seen_at, ip, user_agent) "
                             f"VALUES (1, 'abc', '{now}', '{now}', '', '')")
        database.execute_sql("INSERT INTO application (partner_id, app_id, name, status, created_at, created_by_id) "
                             f"VALUES (1, 'app_1', 'Till', 'active', '{now}', 1)")
        database.execute_sql("INSERT INTO audit_event (partner_id, user_id, actor, action, target, detail, ip, "
                             f"created_at) VALUES (1, 1, 'o@shop.example', 'app.created', 'app_1', '', '', '{now}')")
    applied = db.migrate(database)
    assert "006_operating" in applied
    with database.connection_context():
        assert database.execute_sql("SELECT count(*) FROM user_session").fetchone()[0] == 1
        assert database.execute_sql("SELECT created_by_id FROM application").fetchone()[0] == 1
        assert database.execute_sql("SELECT user_id FROM audit_event").fetchall() == [(1,)]  # not SET NULL
        database.execute_sql("INSERT INTO \"user\" (partner_id, email, password_hash, role, created_at) "
                             f"VALUES (NULL, 'ops@platform.example', 'x', 'operator', '{now}')")
        if isinstance(database, peewee.SqliteDatabase):
            assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
