"""A small reverse proxy for SDK tests: it records every request it sees and can inject
faults (drop the connection, answer for the server, or swallow the server's answer).

    with FaultProxy(live_server.url) as proxy:
        proxy.fail_next("drop")                        # close the socket, send nothing
        proxy.fail_next("after_upstream", status=503)  # forward, then answer 503 instead
        proxy.fail_next("answer", status=429, headers={"Retry-After": "0"}, body=b"...")
        client = LoyaltyClient(..., base_url=proxy.url)
        proxy.requests  # [Seen(method, path, headers, status), ...]

    FaultProxy(live_server.url, tls=context)           # HTTPS in front, with context's certificate
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Seen:
    """One request that reached the proxy, and what the proxy answered."""

    method: str
    path: str
    headers: dict
    body: bytes
    client_port: int = 0
    status: int | None = None
    forwarded: bool = False


@dataclass
class Fault:
    kind: str  # drop | after_upstream | answer
    status: int = 503
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    path_prefix: str = ""


class FaultProxy:
    """A threaded HTTP proxy in front of `upstream` on a free loopback port."""

    def __init__(self, upstream: str, *, tls: ssl.SSLContext | None = None):
        """`tls`: a server-side SSL context, to answer HTTPS (with its certificate) instead of HTTP."""
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.requests: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body, self.client_address[1])
                with proxy._lock:
                    proxy.requests.append(seen)
                    fault = proxy._take_fault(self.path)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "answer":
                    seen.status = fault.status
                    self._answer(fault.status, fault.headers, fault.body)
                    return
                status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
                seen.forwarded = True
                if fault is not None and fault.kind == "after_upstream":
                    seen.status = fault.status
                    self._answer(fault.status, fault.headers, fault.body)
                    return
                seen.status = status
                self._answer(status, headers, payload)

            def _answer(self, status, headers, payload):
                self.send_response_only(status)
                sent = set()
                for name, value in headers.items() if isinstance(headers, dict) else headers:
                    if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                        continue
                    self.send_header(name, value)
                    sent.add(name.lower())
                if "date" not in sent:
                    self.send_header("Date", self.date_time_string())
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if path.startswith(fault.path_prefix):
                return self._faults.pop(index)
        return None

    def _forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def fail_next(self, kind: str, *, status: int = 503, headers: dict | None = None, body: bytes = b"",
                  path_prefix: str = "") -> None:
        """Queue a fault for the next request whose path starts with `path_prefix`."""
        assert kind in ("drop", "after_upstream", "answer")
        with self._lock:
            self._faults.append(Fault(kind, status, dict(headers or {}), body, path_prefix))

    def seen(self, path_prefix: str = "", method: str | None = None) -> list[Seen]:
        """The recorded requests whose path starts with `path_prefix` (and of `method`)."""
        with self._lock:
            return [s for s in self.requests
                    if s.path.startswith(path_prefix) and (method is None or s.method == method)]

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
