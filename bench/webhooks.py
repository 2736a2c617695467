"""Benchmark webhook delivery. Prints figures; asserts nothing.

1. Throughput: events per second that `loyalty-portal worker` processes deliver to a
   local receiver (a threaded HTTP server on loopback that answers 200), with one and with
   two worker processes, on SQLite and (given a PostgreSQL URL) on PostgreSQL. Timed from
   the first arrival to the last, so process start-up is not counted.
2. Delay: `loyalty-portal serve` (which runs the worker) on SQLite; sequential
   `POST /v1/members/{id}/stamps` calls, each timed from sending the call to its
   `stamps.added` event arriving; p50 and p99.
3. Kill -9: a worker is SIGKILLed while deliveries are in flight, another is started;
   how many events never arrived (must be 0).

    python3 bench/webhooks.py [--events 2000] [--calls 200] [--postgres postgresql://postgres@127.0.0.1:5432/test]

(`--postgres` defaults to LOYALTY_TEST_DATABASE_URL; the user must be allowed to CREATE DATABASE.)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "sdk"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_gate import free_port, signed_headers  # noqa: E402


class Receiver:
    """A loopback HTTP server that answers 200 (after `delay` seconds) and records when
    each webhook-id arrived."""

    def __init__(self, delay: float = 0.0):
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    receiver.arrivals.setdefault(self.headers.get("webhook-id", ""), []).append(time.time())
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the worker was killed mid-request (the kill -9 run)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _env(data_dir: Path, url: str, **extra) -> dict:
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_DATABASE_URL": url,
           "LOYALTY_PASSWORD_HASHING": "fast", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'sdk'}"}
    env.update(extra)
    return env


def _worker(data_dir: Path, url: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "portal.cli", "worker"], env=_env(data_dir, url, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _prepare(data_dir: Path, url: str, endpoint_url: str, n_events: int) -> list[str]:
    """Migrate, make a partner with an endpoint, and queue `n_events` events."""
    from portal import create_app, db
    from portal.domain import events, webhooks
    from portal.domain.applications import create_application
    from portal.models import Partner, WebhookEvent

    app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url})
    try:
        with app.app_context():
            db.migrate()
            application, _ = create_application(Partner.create(name="Bench"), "Bench")
            webhooks.create_endpoint(application, url=endpoint_url, mode="test", event_types=events.EVENT_TYPES)
            for start in range(0, n_events, 500):
                with db.write_transaction():
                    for i in range(start, min(n_events, start + 500)):
                        events.emit(application, "test", "stamps.added", {"object": "ledger_entry", "n": i})
            return [e.public_id for e in WebhookEvent.select(WebhookEvent.public_id)]
    finally:
        db.close_all()


class _Databases:
    """Fresh databases: SQLite files in a temp dir, or PostgreSQL databases made with
    CREATE DATABASE and dropped at the end."""

    def __init__(self, postgres_url: str | None):
        self.postgres_url = postgres_url
        self.made: list[str] = []

    def new(self, engine: str, data_dir: Path) -> str:
        if engine == "sqlite":
            return f"sqlite:///{data_dir / 'loyalty.db'}"
        import psycopg2

        name = f"bench_webhooks_{os.getpid()}_{secrets.token_hex(3)}"
        conn = psycopg2.connect(self.postgres_url)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        self.made.append(name)
        parts = urlsplit(self.postgres_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))

    def drop_all(self) -> None:
        if not self.made:
            return
        import psycopg2

        conn = psycopg2.connect(self.postgres_url)
        conn.autocommit = True
        for name in self.made:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def throughput(engine: str, workers: int, n_events: int, databases: _Databases) -> float:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = databases.new(engine, data_dir)
        _prepare(data_dir, url, receiver.url, n_events)
        processes = [_worker(data_dir, url) for _ in range(workers)]
        deadline = time.monotonic() + 300
        while receiver.count() < n_events and time.monotonic() < deadline:
            time.sleep(0.05)
        for process in processes:
            _stop(process)
    times = sorted(t for arrivals in receiver.arrivals.values() for t in arrivals)
    receiver.close()
    if len(times) < 2:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def _json_headers(method: str, path: str, body: bytes, creds: dict) -> dict:
    return {**signed_headers(method, path, body, creds), "Content-Type": "application/json"}


def delay(calls: int) -> tuple[float, float]:
    """p50 and p99 (ms) from POST …/stamps to its event arriving, through `serve`."""
    import requests

    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'loyalty.db'}"
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(port), "--workers", "2"],
                                  env=_env(data_dir, url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if requests.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            demo = json.loads(subprocess.run([sys.executable, "-m", "portal.cli", "demo", "--json"], env=_env(data_dir, url),
                                             capture_output=True, text=True, check=True).stdout)
            from portal import create_app, db
            from portal.domain import webhooks
            from portal.models import Application

            app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url})
            with app.app_context():
                application = Application.get(Application.app_id == demo["app_id"])
                webhooks.create_endpoint(application, url=receiver.url, mode="test", event_types=["stamps.added"])
            db.close_all()
            session = requests.Session()
            body = json.dumps({"email": "bench@example.com"}).encode()
            member = session.post(base + "/v1/members", data=body,
                                  headers=_json_headers("POST", "/v1/members", body, demo), timeout=10).json()
            card = session.get(base + "/v1/cards", headers=_json_headers("GET", "/v1/cards", b"", demo),
                               timeout=10).json()["data"][0]["id"]
            path = f"/v1/members/{member['id']}/stamps"
            delays = []
            for _ in range(calls):
                before = receiver.count()
                body = json.dumps({"card_id": card, "count": 1}).encode()
                sent = time.time()
                assert session.post(base + path, data=body, headers=_json_headers("POST", path, body, demo),
                                    timeout=10).status_code == 201
                deadline = time.monotonic() + 10
                while receiver.count() == before and time.monotonic() < deadline:
                    time.sleep(0.002)
                with receiver.lock:
                    latest = max(t for arrivals in receiver.arrivals.values() for t in arrivals)
                delays.append((latest - sent) * 1000)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
    receiver.close()
    delays.sort()
    return statistics.median(delays), delays[min(len(delays) - 1, int(len(delays) * 0.99))]


def killed(n_events: int = 200) -> tuple[int, int]:
    """(events lost, duplicates) after SIGKILLing a worker with deliveries in flight."""
    receiver = Receiver(delay=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'loyalty.db'}"
        ids = _prepare(data_dir, url, receiver.url, n_events)
        lease = {"LOYALTY_WEBHOOK_LEASE_SECONDS": "12"}
        first = _worker(data_dir, url, **lease)
        while receiver.count() < n_events // 4:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _worker(data_dir, url, **lease)
        deadline = time.monotonic() + 120
        while receiver.count() < n_events and time.monotonic() < deadline:
            time.sleep(0.1)
        _stop(second)
    with receiver.lock:
        lost = len(set(ids) - set(receiver.arrivals))
        duplicates = sum(len(arrivals) - 1 for arrivals in receiver.arrivals.values())
    receiver.close()
    return lost, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("LOYALTY_TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    databases = _Databases(args.postgres or None)
    engines = ["sqlite"] + (["postgres"] if args.postgres else [])
    try:
        for engine in engines:
            for workers in (1, 2):
                rate = throughput(engine, workers, args.events, databases)
                print(f"throughput {engine:8} {workers} worker process{'es' if workers > 1 else '  '}: "
                      f"{rate:7.0f} events/s ({args.events} events)", flush=True)
    finally:
        databases.drop_all()
    p50, p99 = delay(args.calls)
    print(f"POST …/stamps → stamps.added arrival (serve, SQLite, {args.calls} calls): p50 {p50:.0f} ms, p99 {p99:.0f} ms",
          flush=True)
    lost, duplicates = killed()
    print(f"kill -9 mid-delivery (200 events): lost {lost}, delivered twice {duplicates}", flush=True)


if __name__ == "__main__":
    main()
