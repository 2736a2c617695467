"""Expiry reminders and exposed-key events (DESIGN.md §12, §13): a key that expires within
7 days gets api_key.expiring once and its partner's owners and admins an email when mail is
configured; a key reported exposed sends api_key.exposed in the same transaction."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

from portal import create_app, db
from portal.domain.applications import create_application, issue_api_key
from portal.domain.guardrails import revoke_exposed, send_expiry_reminders
from portal.models import ApiKey, Partner, User, WebhookEndpoint, WebhookEvent, utcnow
from tests.api.helpers import NO_PASSWORD

_partners = itertools.count(1)


def _partner_with_key(expires_in, roles=("owner", "admin", "developer")):
    n = next(_partners)
    partner = Partner.create(name="Bakery")
    users = [User.create(partner=partner, email=f"{role}{n}@bakery.example", password_hash=NO_PASSWORD, role=role)
             for role in roles]
    application, _ = create_application(partner, "Shop", by=users[0])
    key, plaintext = issue_api_key(application, name="Till", mode="test", scopes=["card_read"],
                                   expires_in=expires_in)
    WebhookEndpoint.create(public_id=f"we_test{n}", application=application, mode="test",
                           url="http://127.0.0.1:9/hook", secret_ciphertext="x")
    return key, plaintext


def _events(type_):
    return [json.loads(e.body) for e in WebhookEvent.select().where(WebhookEvent.type == type_)]


def test_a_key_expiring_within_7_days_is_reminded_once(app):
    with app.app_context():
        key, _ = _partner_with_key(timedelta(days=5))
        _partner_with_key(timedelta(days=30))  # not yet
        assert send_expiry_reminders() == 1
        assert send_expiry_reminders() == 0  # once
        events = _events("api_key.expiring")
        assert len(events) == 1 and events[0]["data"]["id"] == key.masked
        assert ApiKey.get_by_id(key.id).expiry_reminded_at is not None


def test_a_revoked_or_expired_key_is_not_reminded(app):
    with app.app_context():
        key, _ = _partner_with_key(timedelta(days=2))
        ApiKey.update(revoked_at=utcnow()).where(ApiKey.id == key.id).execute()
        assert send_expiry_reminders() == 0


def test_an_exposed_key_sends_api_key_exposed_with_its_source(app):
    with app.app_context():
        key, plaintext = _partner_with_key(None)
        assert revoke_exposed([plaintext], "https://paste.example/abc") == 1
        events = _events("api_key.exposed")
        assert len(events) == 1 and events[0]["data"]["exposed_source"] == "https://paste.example/abc"
        assert plaintext not in json.dumps(events)


@pytest.mark.sqlite_only  # mail delivery: the engine plays no part
def test_owners_and_admins_get_an_email_when_mail_is_configured(tmp_path):
    from tests.conftest import free_port
    from tests.test_mail import Inbox, aiosmtpd_controller

    box = Inbox()
    controller = aiosmtpd_controller.Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        mail_app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "PASSWORD_HASHING": "fast",
                               "SMTP_URL": f"smtp://127.0.0.1:{controller.port}"})
        with mail_app.app_context():
            db.migrate()
            key, plaintext = _partner_with_key(timedelta(days=3, hours=2))
            assert send_expiry_reminders() == 1
        messages = box.wait_for(2)
        assert sorted(m["To"].split("@")[0].rstrip("0123456789") for m in messages) == ["admin", "owner"]
        text = messages[0].get_payload(decode=True).decode()
        assert "expires in 4 days" in text and key.masked in text and plaintext not in text
    finally:
        controller.stop()
        db.close_all()


@pytest.mark.sqlite_only  # the worker's schedule; the reminder's SQL is covered on both engines above
def test_the_servers_delivery_worker_sends_the_reminders(tmp_path):
    import time

    from tests.conftest import LiveServer

    server = LiveServer(tmp_path)
    assert server.cli("migrate", "--init").returncode == 0  # the database, before the server starts
    demo = server.demo()
    made = server.cli("create-key", "--app", demo["app_id"], "--mode", "test", "--scope", "card_read",
                      "--name", "Expiring", "--expires-in-days", "3", "--json")
    assert made.returncode == 0, made.stderr
    server.start()
    try:
        reader = create_app({"DATA_DIR": str(tmp_path)})
        deadline = time.monotonic() + 20
        with reader.app_context():
            while time.monotonic() < deadline:
                key = ApiKey.get(ApiKey.name == "Expiring")
                if key.expiry_reminded_at is not None:
                    break
                time.sleep(0.2)
            assert key.expiry_reminded_at is not None, server.log_text[-2000:]
    finally:
        server.stop()
        db.close_all()
