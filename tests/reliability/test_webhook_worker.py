"""The delivery worker as real processes (`loyalty-portal worker`, and the one `serve`
starts), on both engines: two workers make each attempt once; a worker killed with
SIGKILL mid-delivery loses nothing (the lease runs out and another worker delivers);
`serve` delivers within 2 seconds of the change and starts its worker again when it dies;
`serve --no-worker` delivers nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from portal import create_app, db
from portal.domain import events, webhooks
from portal.domain.applications import create_application
from portal.models import Application, Partner, WebhookDelivery, WorkerHeartbeat
from tests.conftest import LiveServer
from tests.reliability.conftest import PartnerClient
from tests.webhooks.receiver import Receiver, verified

LEASE_SECONDS = 12  # LOYALTY_WEBHOOK_LEASE_SECONDS: how soon a killed worker's deliveries are taken over


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def start_worker(tmp_path, database_url) -> subprocess.Popen:
    env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": database_url,
           "LOYALTY_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS), "LOYALTY_WEBHOOK_RETRY_SECONDS": "1,1"}
    log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "portal.cli", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def an_endpoint(app, url: str, n_events: int) -> tuple[str, list[str]]:
    """A test-mode endpoint at `url` with `n_events` events waiting; its secret, the ids."""
    with app.app_context():
        application, _ = create_application(Partner.create(name="Shop"), "Till")
        _, secret = webhooks.create_endpoint(application, url=url, mode="test", event_types=events.EVENT_TYPES)
        with db.write_transaction():
            for i in range(n_events):
                events.emit(application, "test", "stamps.added", {"object": "ledger_entry", "n": i})
        from portal.models import WebhookEvent
        ids = [e.public_id for e in WebhookEvent.select()]
        db.release_connection()
    return secret, ids


def statuses(app) -> Counter:
    with app.app_context():
        counted = Counter(d.status for d in WebhookDelivery.select(WebhookDelivery.status))
        db.release_connection()
    return counted


def wait_until_delivered(app, total: int, timeout: float) -> Counter:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counted = statuses(app)
        if counted["succeeded"] == total:
            return counted
        time.sleep(0.2)
    return statuses(app)


def test_two_workers_make_each_attempt_once(app, tmp_path, database_url, receiver):
    secret, ids = an_endpoint(app, receiver.url("/ok"), 300)
    workers = [start_worker(tmp_path, database_url) for _ in range(2)]
    try:
        counted = wait_until_delivered(app, 300, timeout=60)
    finally:
        for worker in workers:
            stop(worker)
    assert counted == Counter({"succeeded": 300})
    arrived = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert set(arrived) == set(ids) and set(arrived.values()) == {1}  # every event, each once
    verified(receiver.received[0], secret)
    with app.app_context():
        beats = {b.worker for b in WorkerHeartbeat.select()}
        assert len(beats) == 2 and webhooks.worker_last_seen() is not None


def test_a_worker_killed_mid_delivery_loses_nothing(app, tmp_path, database_url, receiver):
    secret, ids = an_endpoint(app, receiver.url("/slow/1.5"), 20)
    first = start_worker(tmp_path, database_url)
    try:
        receiver.wait_for(1, timeout=20)  # attempts are in flight
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    killed_at = time.monotonic()
    second = start_worker(tmp_path, database_url)
    try:
        counted = wait_until_delivered(app, 20, timeout=LEASE_SECONDS + 40)
    finally:
        stop(second)
    assert counted == Counter({"succeeded": 20})
    arrived = {r.headers["webhook-id"] for r in receiver.received}
    assert arrived == set(ids)  # lost: 0
    assert time.monotonic() - killed_at >= LEASE_SECONDS - 1  # the killed worker's leases ran out first


def test_serve_delivers_within_2_seconds_and_restarts_a_dead_worker(tmp_path, engine, request, receiver):
    url = _server_database(tmp_path, engine, request)
    live = LiveServer(tmp_path, env={"LOYALTY_DATABASE_URL": url}).start()
    try:
        demo = live.demo()
        secret = _endpoint_for(tmp_path, url, demo["app_id"], receiver.url("/ok"))
        partner = PartnerClient(live.url, demo)
        member = partner.create_member()
        receiver.wait_for(1, timeout=5)  # member.created
        started = time.time()
        res = partner.post(f"/v1/members/{member}/cashback/credit", {"amount": 100})
        assert res.status_code == 201, res.text
        [_, credited] = receiver.wait_for(2, timeout=5)
        assert credited.at - started < 2.0  # from the call to its event's arrival
        assert verified(credited, secret)["type"] == "cashback.credited"

        pids = [int(b.split(":")[1]) for b in _heartbeats(tmp_path, url)]
        os.kill(pids[0], signal.SIGKILL)  # the worker dies; serve starts another
        time.sleep(0.5)
        partner.create_member()
        receiver.wait_for(3, timeout=15)
    finally:
        live.stop()


def test_serve_without_the_worker_delivers_nothing(tmp_path, engine, request, receiver):
    url = _server_database(tmp_path, engine, request)
    live = LiveServer(tmp_path, env={"LOYALTY_DATABASE_URL": url}, serve_args=("--no-worker",)).start()
    try:
        demo = live.demo()
        _endpoint_for(tmp_path, url, demo["app_id"], receiver.url("/ok"))
        PartnerClient(live.url, demo).create_member()
        time.sleep(2.5)
        assert receiver.received == []
        assert _heartbeats(tmp_path, url) == []
    finally:
        live.stop()


def _server_database(tmp_path, engine, request) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'loyalty.db'}"
    factory = request.getfixturevalue("postgres_databases")
    url = factory.create()
    request.addfinalizer(lambda: factory.release(url))
    return url


def _endpoint_for(data_dir, url, app_id, endpoint_url) -> str:
    """An endpoint for the server's application, made through the server's own database."""
    local = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url, "TESTING": True})
    try:
        with local.app_context():
            application = Application.get(Application.app_id == app_id)
            _, secret = webhooks.create_endpoint(application, url=endpoint_url, mode="test",
                                                 event_types=events.EVENT_TYPES)
        return secret
    finally:
        db.close_all()


def _heartbeats(data_dir, url) -> list[str]:
    local = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url, "TESTING": True})
    try:
        with local.app_context():
            return [b.worker for b in WorkerHeartbeat.select()]
    finally:
        db.close_all()
