"""What the platform keeps on disk is its owner's alone: the data dir 0700, the SQLite file
and its -wal/-shm 0600, also when they existed before with looser modes; and migration 002
leaves every partner with an owner."""

from __future__ import annotations

import stat

import peewee
from peewee_migrate import Router

from portal import create_app, db


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_and_database_are_readable_by_their_owner_only(tmp_path):
    data_dir = tmp_path / "instance"
    app = create_app({"DATA_DIR": str(data_dir)})
    with app.app_context():
        db.migrate()
        db.database.execute_sql("CREATE TABLE IF NOT EXISTS probe (x)")
        db.database.execute_sql("INSERT INTO probe VALUES (1)")  # makes the -wal and -shm files
        files = sorted(p.name for p in data_dir.iterdir())
        assert {"loyalty.db", "loyalty.db-wal", "loyalty.db-shm"} <= set(files)
        assert mode_of(data_dir) == 0o700
        for name in files:
            assert mode_of(data_dir / name) == 0o600, name
    db.close_all()


def test_an_existing_data_dir_and_database_are_tightened(tmp_path):
    data_dir = tmp_path / "instance"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    database = data_dir / "loyalty.db"
    database.touch()
    database.chmod(0o644)
    (data_dir / "loyalty.db-wal").touch()
    (data_dir / "loyalty.db-wal").chmod(0o644)
    create_app({"DATA_DIR": str(data_dir)})
    assert mode_of(data_dir) == 0o700
    assert mode_of(database) == 0o600 and mode_of(data_dir / "loyalty.db-wal") == 0o600
    db.close_all()


def test_migration_002_gives_a_partner_without_an_owner_its_first_user_as_owner(tmp_path):
    database = peewee.SqliteDatabase(str(tmp_path / "old.db"))
    router = Router(database, migrate_dir=str(db.MIGRATIONS_DIR), ignore=["basemodel"])
    router.run("001_initial")
    database.execute_sql("INSERT INTO partner (name, status, created_at) VALUES ('Old Shop', 'active', '2025-01-01')")
    database.execute_sql("INSERT INTO partner (name, status, created_at) VALUES ('Fine Shop', 'active', '2025-01-01')")
    database.execute_sql("INSERT INTO partner (name, status, created_at) VALUES ('Dev Shop', 'active', '2025-01-01')")
    for email, partner, role in (("first@old.example", 1, "developer"), ("second@old.example", 1, "weird"),
                                 ("owner@fine.example", 2, "owner"), ("dev@dev.example", 3, "developer"),
                                 ("later@dev.example", 3, "developer")):
        database.execute_sql('INSERT INTO "user" (partner_id, email, password_hash, role, created_at) '
                             "VALUES (?, ?, 'x', ?, '2025-01-01')", (partner, email, role))
    router.run()
    roles = dict(database.execute_sql('SELECT email, role FROM "user"').fetchall())
    assert roles == {"first@old.example": "developer", "second@old.example": "owner", "owner@fine.example": "owner",
                     "dev@dev.example": "owner", "later@dev.example": "developer"}
    database.close()
