"""Delivery, attempt by attempt, against a local receiver: what counts as success, what a
failed attempt records, retries and their schedule, Retry-After, 410, five days of
failures, the production address rule at connect time, secret rotation, resend, the test
event, and a deleted endpoint.

What an attempt does with the answer never depends on SQL; these run on SQLite (the
claiming that does is in tests/reliability/test_webhook_worker.py, on both engines)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from portal.db import release_connection
from portal.domain import events, webhooks
from portal.domain.applications import create_application
from portal.models import DeliveryAttempt, Partner, WebhookDelivery, WebhookEndpoint, utcnow
from portal.webhooks_worker import Worker
from tests.webhooks.receiver import verified

pytestmark = pytest.mark.sqlite_only  # outcomes of one attempt; no SQL behaviour


@pytest.fixture
def application(app):
    with app.app_context():
        partner = Partner.create(name="Corner Coffee")
        application, _ = create_application(partner, "Till")
        return application


@pytest.fixture
def endpoint_at(app, application):
    """endpoint_at(url, mode="test") → (endpoint, secret), subscribed to every type."""

    def make(url, mode="test"):
        with app.app_context():
            return webhooks.create_endpoint(application, url=url, mode=mode, event_types=events.EVENT_TYPES)

    return make


def emit(app, application, n=1, mode="test", type="member.created"):
    with app.app_context():
        for i in range(n):
            events.emit(application, mode, type, {"object": "member", "id": f"mem_{i}"})


def attempts(app, endpoint) -> list[DeliveryAttempt]:
    with app.app_context():
        return list(DeliveryAttempt.select().join(WebhookDelivery)
                    .where(WebhookDelivery.endpoint == endpoint.id).order_by(DeliveryAttempt.id))


def delivery(app, endpoint) -> WebhookDelivery:
    with app.app_context():
        return WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id).order_by(
            WebhookDelivery.id).first()


def test_a_2xx_answer_is_success_and_its_first_2_kib_are_kept(app, application, endpoint_at, receiver, deliver_all):
    endpoint, secret = endpoint_at(receiver.url("/ok"))
    emit(app, application)
    assert deliver_all() == 1
    [attempt] = attempts(app, endpoint)
    assert attempt.succeeded and attempt.status_code == 200 and attempt.response_excerpt == "ok"
    assert delivery(app, endpoint).status == "succeeded"
    [received] = receiver.received
    assert received.headers["content-type"] == "application/json"
    assert verified(received, secret)["type"] == "member.created"


@pytest.mark.parametrize("path, reason", [
    ("/status/500", "answered 500"),
    ("/redirect", "answered 301 (a redirect, not followed)"),
    ("/big", "over 64 KiB"),
    ("/big-chunked", "over 64 KiB"),
])
def test_a_failed_answer_is_a_failed_attempt_with_its_reason_and_a_retry(app, application, endpoint_at, receiver,
                                                                          deliver_all, path, reason):
    endpoint, _ = endpoint_at(receiver.url(path))
    emit(app, application)
    before = utcnow()
    deliver_all(rounds=1)
    [attempt] = attempts(app, endpoint)
    assert not attempt.succeeded and reason in attempt.error
    assert len(attempt.response_excerpt) <= 2048
    pending = delivery(app, endpoint)
    assert pending.status == "pending" and pending.attempts == 1
    assert timedelta(seconds=0.5) < pending.next_attempt_at - before < timedelta(seconds=3)  # the schedule's 1 s
    assert [r.path for r in receiver.received] == [path]  # the redirect was not followed


def test_retries_follow_the_schedule_then_the_delivery_fails(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/status/503"))
    emit(app, application)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and delivery(app, endpoint).status == "pending":
        deliver_all(rounds=1)
        time.sleep(0.1)
    arrived = [r.at for r in receiver.received]
    assert len(arrived) == 3  # the first attempt and the schedule's two retries
    assert all(later - earlier >= 0.9 for earlier, later in zip(arrived, arrived[1:]))
    done = delivery(app, endpoint)
    assert done.status == "failed" and done.attempts == 3 and done.next_attempt_at is None


def test_retry_after_is_honoured_on_429(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/retry-after/120"))
    emit(app, application)
    before = utcnow()
    deliver_all(rounds=1)
    wait = delivery(app, endpoint).next_attempt_at - before
    assert timedelta(seconds=119) <= wait <= timedelta(seconds=122)


def test_410_disables_the_endpoint_and_says_why(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/gone"))
    emit(app, application, n=1)
    deliver_all()
    emit(app, application, n=1)
    deliver_all()
    with app.app_context():
        gone = WebhookEndpoint.get_by_id(endpoint.id)
    assert not gone.enabled and "410" in gone.disabled_reason
    assert len(receiver.received) == 1  # nothing more is sent to a disabled endpoint
    assert delivery(app, endpoint).status == "failed"


def test_five_days_of_failures_disable_the_endpoint(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/status/500"))
    with app.app_context():
        WebhookEndpoint.update(failing_since=utcnow() - timedelta(days=5, minutes=1)).where(
            WebhookEndpoint.id == endpoint.id).execute()
    emit(app, application)
    deliver_all(rounds=1)
    with app.app_context():
        failed = WebhookEndpoint.get_by_id(endpoint.id)
    assert not failed.enabled and "failed for 5 days" in failed.disabled_reason and "answered 500" in failed.disabled_reason


def test_a_success_resets_the_failing_clock(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/flaky/1"))
    emit(app, application)
    deliver_all(rounds=1)
    with app.app_context():
        assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is not None
    time.sleep(1.1)
    deliver_all(rounds=1)
    with app.app_context():
        assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None
    assert delivery(app, endpoint).status == "succeeded"


def test_production_refuses_loopback_at_connect_time(app, application, endpoint_at, receiver, deliver_all):
    """An endpoint whose name came to resolve to a loopback address (or whose row says so)
    gets a failed attempt, and the worker goes on with the other endpoints."""
    endpoint, _ = endpoint_at("https://1.1.1.1/hook", mode="prod")
    by_name, _ = endpoint_at("https://1.0.0.1/hook", mode="prod")
    port = receiver.server.server_address[1]
    with app.app_context():
        WebhookEndpoint.update(url=f"https://127.0.0.1:{port}/ok").where(WebhookEndpoint.id == endpoint.id).execute()
        WebhookEndpoint.update(url=f"https://localhost:{port}/ok").where(WebhookEndpoint.id == by_name.id).execute()
    ok, _ = endpoint_at(receiver.url("/ok"))
    emit(app, application, mode="prod")
    emit(app, application, mode="test")
    deliver_all(rounds=1)
    [refused] = attempts(app, endpoint)
    assert "127.0.0.1, a loopback address" in refused.error and refused.status_code is None
    [refused_by_name] = attempts(app, by_name)
    assert "localhost is 127.0.0.1, a loopback address" in refused_by_name.error
    assert [r.path for r in receiver.received] == ["/ok"]  # only the test-mode endpoint was reached


def test_production_endpoints_must_be_https_and_public_when_added(app, application):
    with app.app_context():
        for url, says in [("http://1.1.1.1/hook", "https://"), ("https://127.0.0.1/hook", "loopback"),
                          ("https://10.0.0.8/hook", "private"), ("https://169.254.169.254/latest", "link-local"),
                          ("https://localhost/hook", "localhost"), ("https://[::1]/hook", "loopback"),
                          ("ftp://example.com/", "https://"), ("https://user:pw@example.com/", "user name")]:
            with pytest.raises(webhooks.Invalid) as refused:
                webhooks.create_endpoint(application, url=url, mode="prod", event_types=events.EVENT_TYPES)
            assert says in refused.value.message, url
        # test mode may be http:// and local
        webhooks.create_endpoint(application, url="http://127.0.0.1:9/hook", mode="test", event_types=["member.created"])


def test_the_operator_may_allow_private_production_endpoints(tmp_path, database_url, receiver):
    from portal import create_app, db

    allowed = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                          "WEBHOOK_ALLOW_PRIVATE": "1"})
    try:
        with allowed.app_context():
            partner = Partner.create(name="Intranet")
            application, _ = create_application(partner, "Till")
            webhooks.create_endpoint(application, url=receiver.url("/ok"), mode="prod", event_types=events.EVENT_TYPES)
            events.emit(application, "prod", "member.created", {"object": "member"})
            from portal.webhooks_worker import deliver_due
            assert deliver_due() == 1
        assert [r.path for r in receiver.received] == ["/ok"]
    finally:
        db.close_all()


def test_a_hanging_endpoint_times_out_and_the_worker_goes_on(app, application, endpoint_at, receiver):
    hanging, _ = endpoint_at(receiver.url("/hang"))
    ok, _ = endpoint_at(receiver.url("/ok"))
    emit(app, application, n=3)
    worker = Worker(threads=4, poll_seconds=0.05)
    with app.app_context():
        thread = threading.Thread(target=lambda: (worker.run(), release_connection()))
        thread.start()
    try:
        receiver.wait_for(3, path="/ok", timeout=5)  # while the hanging ones wait
        assert attempts(app, hanging) == []  # the others went on before any hanging attempt ended
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(attempts(app, hanging)) < 3:
            time.sleep(0.2)
    finally:
        worker.stopping.set()
        thread.join(20)
    hung = attempts(app, hanging)
    assert len(hung) == 3 and all("timed out" in a.error for a in hung)
    assert all(9000 <= a.latency_ms <= 12000 for a in hung)


def test_a_deleted_endpoint_receives_nothing_more(app, application, endpoint_at, receiver, deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/ok"))
    emit(app, application, n=3)
    with app.app_context():
        webhooks.delete_endpoint(WebhookEndpoint.get_by_id(endpoint.id))
        emit(app, application, n=1)
    assert deliver_all() == 0
    assert receiver.received == []


def test_a_disabled_endpoint_waits_and_gets_its_deliveries_when_enabled(app, application, endpoint_at, receiver,
                                                                      deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/ok"))
    with app.app_context():
        webhooks.set_enabled(WebhookEndpoint.get_by_id(endpoint.id), False)
    emit(app, application, n=1)  # a disabled endpoint is not subscribed
    assert deliver_all() == 0
    with app.app_context():
        webhooks.set_enabled(WebhookEndpoint.get_by_id(endpoint.id), True)
    emit(app, application, n=1)
    assert deliver_all() == 1


def test_rotation_sends_both_signatures_for_24_hours(app, application, endpoint_at, receiver, deliver_all):
    endpoint, old = endpoint_at(receiver.url("/ok"))
    with app.app_context():
        new = webhooks.rotate_secret(WebhookEndpoint.get_by_id(endpoint.id))
    emit(app, application)
    deliver_all()
    [received] = receiver.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verified(received, old) == verified(received, new)
    with app.app_context():  # after the overlap, only the new secret signs
        WebhookEndpoint.update(previous_secret_expires_at=utcnow() - timedelta(seconds=1)).where(
            WebhookEndpoint.id == endpoint.id).execute()
    emit(app, application)
    deliver_all()
    later = receiver.received[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    verified(later, new)
    from standardwebhooks.webhooks import WebhookVerificationError
    with pytest.raises(WebhookVerificationError):
        verified(later, old)


def test_resend_and_the_test_event(app, application, endpoint_at, receiver, deliver_all):
    endpoint, secret = endpoint_at(receiver.url("/ok"))
    emit(app, application)
    deliver_all()
    with app.app_context():
        first = WebhookDelivery.get(WebhookDelivery.endpoint == endpoint.id)
        webhooks.resend(first)
        webhooks.send_test_event(WebhookEndpoint.get_by_id(endpoint.id))
    deliver_all()
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids[0] == ids[1]  # the same event again: receivers deduplicate by webhook-id
    assert verified(receiver.received[2], secret)["type"] == "webhook.test"


def test_an_answer_dripping_a_byte_a_second_is_cut_off_at_10_seconds(app, application, endpoint_at, receiver,
                                                                      deliver_all):
    endpoint, _ = endpoint_at(receiver.url("/drip"))
    emit(app, application)
    deliver_all(rounds=1)
    [attempt] = attempts(app, endpoint)
    assert not attempt.succeeded and "timed out" in attempt.error
    assert 9500 <= attempt.latency_ms <= 11500
