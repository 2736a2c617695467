"""Fixtures for the reliability suite: the real server in several processes on this test's
engine (every test here runs on SQLite and on PostgreSQL; see tests/conftest.py), a demo
partner, and a small signed HTTP client that is safe to use from many threads.

`server` and `partner` are shared by a module's tests on one engine (each test makes its
own members, so they stay apart): starting a server and making a demo partner take
seconds. A test that kills its server or takes its database away uses `own_server` and
`own_partner` instead.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import requests

from tests.api.helpers import sign
from tests.conftest import LiveServer

WORKERS = 2


class PartnerClient:
    """Signed calls to one server as one partner (the demo's test key).

    Every call is signed afresh (new timestamp and nonce) unless `headers` are given
    ready-made. One `requests.Session` per thread: sessions are not thread-safe.
    """

    def __init__(self, base_url: str, creds: dict, key: str = "test_key"):
        self.base_url = base_url
        self.app_id = creds["app_id"]
        self.app_secret = creds["app_secret"]
        self.api_key = creds[key]
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def signed_headers(self, method: str, path: str, body: bytes = b"", **extra) -> dict:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        headers.update(sign(method, path, body, app_id=self.app_id, app_secret=self.app_secret))
        if body:
            headers["Content-Type"] = "application/json"
        headers.update(extra)
        return headers

    def request(self, method: str, path: str, json_body=None, *, headers: dict | None = None,
                timeout: float = 30, **extra_headers) -> requests.Response:
        body = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None else b""
        if headers is None:
            headers = self.signed_headers(method, path, body, **extra_headers)
        return self.session.request(method, self.base_url + path, data=body, headers=headers, timeout=timeout)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body=None, **kw) -> requests.Response:
        return self.request("POST", path, json_body if json_body is not None else {}, **kw)

    # Conveniences the tests share.

    def create_member(self) -> str:
        res = self.post("/v1/members", {"email": f"m-{uuid.uuid4().hex[:12]}@example.com", "name": "Reliability"})
        assert res.status_code == 201, res.text
        return res.json()["id"]

    def cashback_balance(self, member_id: str) -> int:
        res = self.get(f"/v1/members/{member_id}/cashback")
        assert res.status_code == 200, res.text
        return res.json()["balance"]

    def cashback_history(self, member_id: str) -> list[dict]:
        """Every cashback entry of the member, following the cursor to the end."""
        entries, cursor = [], None
        while True:
            path = f"/v1/members/{member_id}/cashback/history?limit=100"
            if cursor:
                path += f"&starting_after={cursor}"
            res = self.get(path)
            assert res.status_code == 200, res.text
            page = res.json()
            entries.extend(page["data"])
            if not page["has_more"]:
                return entries
            cursor = page["data"][-1]["id"]


class _ServersPerEngine:
    """The servers (and demo partners) a module's tests share, one per engine, started
    on first use and stopped when the module ends."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.started: dict[str, tuple[LiveServer, PartnerClient]] = {}
        self.postgres: list[tuple[object, str]] = []

    def get(self, engine: str, request) -> tuple[LiveServer, PartnerClient]:
        if engine not in self.started:
            data_dir = self.tmp_path_factory.mktemp(f"server-{engine}")
            if engine == "postgres":
                factory = request.getfixturevalue("postgres_databases")
                url = factory.create()
                self.postgres.append((factory, url))
            else:
                url = f"sqlite:///{data_dir / 'loyalty.db'}"  # `serve` migrates it
            # No webhook worker: the races count the server's processes and want the cores
            # for its gunicorn workers (tests/reliability/test_webhook_worker.py runs it).
            live = LiveServer(data_dir, workers=WORKERS, env={"LOYALTY_DATABASE_URL": url},
                              serve_args=("--no-worker",)).start()
            self.started[engine] = (live, PartnerClient(live.url, live.demo()))
        return self.started[engine]

    def stop(self) -> None:
        for live, _ in self.started.values():
            live.stop()
        for factory, url in self.postgres:
            factory.release(url)


@pytest.fixture(scope="module")
def _servers_per_engine(tmp_path_factory):
    servers = _ServersPerEngine(tmp_path_factory)
    yield servers
    servers.stop()


@pytest.fixture
def server(engine, request, _servers_per_engine) -> LiveServer:
    """`loyalty-portal serve --workers 2 --no-worker` on this engine, shared by the module's tests."""
    return _servers_per_engine.get(engine, request)[0]


@pytest.fixture
def partner(engine, request, _servers_per_engine) -> PartnerClient:
    """The demo partner of `server`, calling with its test key."""
    return _servers_per_engine.get(engine, request)[1]


@pytest.fixture
def own_server(tmp_path, database_url):
    """`loyalty-portal serve --workers 2` on this test's own database, for this test alone."""
    live = LiveServer(tmp_path, workers=WORKERS, env={"LOYALTY_DATABASE_URL": database_url}).start()
    yield live
    live.stop()


@pytest.fixture
def own_partner(own_server) -> PartnerClient:
    """The demo partner of `own_server`, calling with its test key."""
    return PartnerClient(own_server.url, own_server.demo())


def run_together(count: int, action) -> list:
    """Run `action(i)` in `count` threads released at the same instant; their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # a transport error is a result the test inspects
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
