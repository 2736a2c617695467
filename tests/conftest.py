"""Shared fixtures: an app on a fresh SQLite file, its test client and CLI runner, and a
live server (the real `loyalty-portal serve`, gunicorn on a loopback port)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from portal import create_app, db

TESTS_DIR = Path(__file__).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def signing_vectors() -> dict:
    """The worked signing cases from the design, copied into the repo."""
    return json.loads((TESTS_DIR / "signing-vectors.json").read_text())


@pytest.fixture
def app(tmp_path):
    """The app on a fresh SQLite file in its own data dir, migrated."""
    application = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    with application.app_context():
        db.migrate()
    yield application
    db.database.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`loyalty-portal serve` in a subprocess, on its own data dir and port."""

    def __init__(self, data_dir: Path, *, workers: int = 1, env: dict | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir)}
        self.env.pop("LOYALTY_DATABASE_URL", None)  # a file database in data_dir unless `env` says
        self.env.update(env or {})
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> "LiveServer":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
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

    def stop(self, sig=None) -> None:
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

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
