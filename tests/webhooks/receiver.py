"""A real webhook receiver for tests: an HTTP server on a loopback port, in a thread.

Every request is recorded (path, headers, body, arrival time). The path chooses the
answer: `/ok` 200; `/status/500` that status; `/hang` sleeps 30 s before answering; `/big`
answers 200 with 10 MB; `/redirect` 301 to http://127.0.0.1/private; `/retry-after/2` 429
with `Retry-After: 2`; `/gone` 410; `/flaky/2` fails the first 2 requests with 500, then 200;
`/slow/0.5` answers 200 after half a second; `/drip` sends its headers, then one byte a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float = field(default_factory=time.time)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver: Receiver = self.server.receiver
        with receiver.lock:
            receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            count = receiver.counts.get(self.path, 0) + 1
            receiver.counts[self.path] = count
        parts = self.path.strip("/").split("/")
        kind = parts[0]
        if kind == "hang":
            receiver.stopping.wait(30)
            return self._answer(200, b"late")
        if kind == "drip":  # headers at once, then a byte a second: never done within 10 s
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    if receiver.stopping.wait(1):
                        break
                    self.wfile.write(b"x")
                    self.wfile.flush()
            except OSError:
                pass
            return
        if kind == "slow":
            time.sleep(float(parts[1]))
            return self._answer(200, b"ok")
        if kind == "status":
            return self._answer(int(parts[1]), b"status " + parts[1].encode())
        if kind == "big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(160):
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        if kind == "big-chunked":  # no Content-Length: the size shows only while reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(160):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
            self.close_connection = True
            return
        if kind == "redirect":
            return self._answer(301, b"moved", {"Location": "http://127.0.0.1:1/private"})
        if kind == "retry-after":
            return self._answer(429, b"slow down", {"Retry-After": parts[1]})
        if kind == "gone":
            return self._answer(410, b"gone")
        if kind == "flaky" and count <= int(parts[1]):
            return self._answer(500, b"not yet")
        return self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class Receiver:
    """`with Receiver() as r:` … `r.url("/ok")`, `r.received`, `r.wait_for(n)`."""

    def __init__(self):
        self.received: list[Received] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, count: int, timeout: float = 10.0, path: str | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = [r for r in self.received if path is None or r.path == path]
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{len(got)} of {count} webhooks arrived within {timeout} s")


def verified(received: Received, secret: str) -> dict:
    """The event, verified by the standardwebhooks library (raises if it does not verify)."""
    return Webhook(secret).verify(received.body, received.headers)
