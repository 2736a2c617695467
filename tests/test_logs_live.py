"""The real `loyalty-portal serve` on a loopback port: every line it writes, gunicorn's
own included, has one format (time, level, logger, message), request lines carry the
client's address, and LOYALTY_LOG_FORMAT=json makes every line one JSON object."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from portal.credentials import generate_api_key
from tests.conftest import LiveServer, free_port

REPO = Path(__file__).resolve().parent.parent
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S.*$")


def wait_for(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz within 30 s")


def test_quick_start_serve_writes_every_line_in_one_text_format(tmp_path):
    """`loyalty-portal serve` in a fresh folder with nothing configured (the README's quick
    start): it sets up ./instance and every line of its output is TIME LEVEL LOGGER: MESSAGE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "sdk")])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "out.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "portal.cli", "serve", "--port", str(port), "--workers", "1"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(url, proc)
            assert requests.get(url + "/login", timeout=5).status_code == 200
            assert requests.get(url + "/login%0A2026-01-01T00:00:00.000Z INFO portal.web: forged", timeout=5).status_code == 404
            assert requests.get(url + "/v1/key", timeout=5).status_code == 401
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert (tmp_path / "instance" / "loyalty.db").exists()
    lines = (tmp_path / "out.log").read_text().splitlines()
    assert lines, "no output"
    assert [line for line in lines if not TEXT_LINE.match(line)] == []
    assert "INFO portal.cli: Using database sqlite:///" in lines[0]
    assert any(" INFO gunicorn.error: Listening at: " in line for line in lines)
    assert any(re.search(r" INFO portal\.web: portal GET /login 200 [\d.]+ms client=127\.0\.0\.1 user=-$", line)
               for line in lines)
    assert any(re.search(r" INFO portal\.api: api req_\w+ GET /v1/key 401 [\d.]+ms key=- client=127\.0\.0\.1$", line)
               for line in lines)
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in lines)  # the forged line stayed inside
    assert not any('"GET /login HTTP/1.1"' in line for line in lines)  # no second, gunicorn access line


def test_json_logs_are_one_object_per_line_with_request_fields_and_outage_lines(tmp_path, postgres_databases):
    url = postgres_databases.create()
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    server = LiveServer(tmp_path, env={"LOYALTY_LOG_FORMAT": "json", "LOYALTY_DATABASE_URL": url}).start()
    try:
        demo = server.demo()
        from tests.api.helpers import SignedAuth

        auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
        ok = requests.get(server.url + "/v1/key", auth=auth, timeout=5)
        assert ok.status_code == 200
        assert requests.get(server.url + "/login", timeout=5).status_code == 200
        # The database goes away: no new connections, the open ones cut.
        postgres_databases.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        postgres_databases.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                   (name,))
        assert requests.get(server.url + "/login", timeout=15).status_code == 503
        away = requests.get(server.url + "/v1/key", timeout=15,
                            headers={"Authorization": f"Bearer {generate_api_key('test')}"})
        assert away.status_code == 503
    finally:
        server.stop()
        postgres_databases.drop(url)
    entries = []
    for line in server.log_text.splitlines():
        entry = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["time"])
        entries.append(entry)
    api = [e for e in entries if e["logger"] == "portal.api" and e.get("status") == 200]
    assert len(api) == 1
    line = api[0]
    assert line["request_id"] == ok.headers["X-Request-Id"]
    assert (line["method"], line["path"], line["route"], line["app_id"], line["mode"], line["client"]) == \
        ("GET", "/v1/key", "/v1/key", demo["app_id"], "test", "127.0.0.1")
    assert line["key"].startswith("test_sk_") and demo["test_key"] not in json.dumps(entries)
    assert isinstance(line["duration_ms"], float) and line["error_code"] is None
    assert line["user_agent"].startswith("python-requests/") and line["replayed"] is False
    outage = [e for e in entries if e["level"] == "WARNING" and "database unavailable" in e["message"]]
    # The requests' outage lines carry their request id; the webhook worker, polling the
    # same database, may log the outage too (in the same format, with no request).
    assert {e["logger"] for e in outage} - {"portal.webhooks_worker"} == {"portal.web", "portal.api"}
    assert all(e.get("request_id", "").startswith("req_") for e in outage if e["logger"] != "portal.webhooks_worker")
    refused = [e for e in entries if e["logger"] == "portal.api" and e.get("status") == 503]
    assert refused and refused[0]["error_code"] == "service_unavailable"
    assert any(e["logger"] == "gunicorn.error" and e["message"].startswith("Listening at:") for e in entries)
