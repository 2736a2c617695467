"""GET /readyz (DESIGN.md §14): 200 when the database answers, its schema is current and
(when delivery runs) a delivery worker reported within the last minute, 503 with the
reasons otherwise; the reasons name no host, driver message or secret."""

from __future__ import annotations

import pytest

from portal import create_app, db

pytestmark = pytest.mark.both_engines


def test_a_migrated_database_is_ready(client):
    res = client.get("/readyz")
    assert res.status_code == 200
    assert res.get_json() == {"status": "ready"}
    assert res.headers["Cache-Control"] == "no-store"


@pytest.fixture
def history(app):
    """Edit peewee-migrate's history for one test; it is put back after (a PostgreSQL test
    database is emptied and reused, its history kept)."""
    def run(sql):
        with app.app_context():
            db.database.execute_sql(sql)

    yield run
    run("DELETE FROM migratehistory WHERE name = '099_future'")
    with app.app_context():
        if not db.database.execute_sql("SELECT 1 FROM migratehistory WHERE name = '002_teams'").fetchall():
            db.database.execute_sql("INSERT INTO migratehistory (name, migrated_at) VALUES ('002_teams', "
                                    "CURRENT_TIMESTAMP)")


def test_a_schema_behind_this_version_is_not_ready(client, history):
    history("DELETE FROM migratehistory WHERE name = '002_teams'")
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.get_json() == {"status": "not ready", "reasons": [
        "the schema is not current: 1 migration(s) not applied (002_teams): run loyalty-portal migrate"]}


def test_a_database_migrated_by_a_newer_release_is_not_ready(client, history):
    history("INSERT INTO migratehistory (name, migrated_at) VALUES ('099_future', CURRENT_TIMESTAMP)")
    res = client.get("/readyz")
    assert res.status_code == 503
    assert "the database was migrated by a newer release (099_future unknown" in res.get_json()["reasons"][0]


@pytest.mark.sqlite_only  # nothing reaches SQL: the server is not there
def test_a_database_that_does_not_answer_is_not_ready_and_says_no_more(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path),
                      "DATABASE_URL": "postgresql://loyalty:hunter2@127.0.0.1:1/loyalty?connect_timeout=2"})
    try:
        res = app.test_client().get("/readyz")
    finally:
        db.close_all()
    assert res.status_code == 503
    assert res.get_json() == {"status": "not ready", "reasons": ["the database does not answer"]}


def test_a_delivery_worker_silent_for_over_a_minute_makes_it_not_ready(app, client):
    from datetime import timedelta

    from portal.domain import webhooks
    from portal.models.base import utcnow

    with app.app_context():
        webhooks.beat("worker-a", now=utcnow() - timedelta(seconds=20))
    assert client.get("/readyz").status_code == 200  # reported 20 s ago: delivery runs, fine

    with app.app_context():
        webhooks.beat("worker-a", now=utcnow() - timedelta(minutes=3))
    res = client.get("/readyz")
    assert res.status_code == 503
    [reason] = res.get_json()["reasons"]
    assert "delivery worker last reported" in reason and "loyalty-portal serve" in reason
