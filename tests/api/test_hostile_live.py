"""Hostile input against the real server (`loyalty-portal serve`, gunicorn), once per
engine: chunked bodies past 64 KiB, bytes that are not UTF-8 on the wire, text no database
stores, and log lines a request tries to forge (issue #9). The same classes through the
Flask test client, with more inputs each, are in tests/api/test_hostile_input.py."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests

from tests.api.helpers import sign
from tests.conftest import LiveServer

LIMIT = 64 * 1024


@pytest.fixture(scope="module", params=[
    pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
def server(request, tmp_path_factory):
    """One real server per engine for this module, with a demo partner."""
    env = {}
    if request.param == "postgres":
        factory = request.getfixturevalue("postgres_databases")
        env["LOYALTY_DATABASE_URL"] = url = factory.create()
    live = LiveServer(tmp_path_factory.mktemp(f"hostile-{request.param}"), env=env).start()
    live.creds = live.demo()
    yield live
    live.stop()
    if request.param == "postgres":
        factory.release(url)


def signed_headers(server, method: str, path_and_query: str, body: bytes = b"") -> dict:
    creds = server.creds
    headers = {"Authorization": f"Bearer {creds['test_key']}", "Content-Type": "application/json"}
    headers.update(sign(method, path_and_query, body, app_id=creds["app_id"], app_secret=creds["app_secret"]))
    return headers


def raw_exchange(server, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection; the status and the body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def chunked(body: bytes, size: int = 8192) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def padded(email: str, size: int) -> bytes:
    head = json.dumps({"email": email}).encode()
    return head + b" " * (size - len(head))


def test_a_chunked_body_past_64_kib_is_413_from_the_api_and_the_portal(server):
    # requests sends a generator as Transfer-Encoding: chunked.
    for size in (LIMIT + 1, 70 * 1024, 1024 * 1024):
        body = padded(f"chunked{size}@example.com", size)
        res = requests.post(server.url + "/v1/members", data=iter([body[i:i + 8192] for i in range(0, size, 8192)]),
                            headers=signed_headers(server, "POST", "/v1/members", body[:LIMIT]), timeout=30)
        assert res.status_code == 413, (size, res.text)
        assert res.json()["error"]["code"] == "request_too_large"
    # The same framed by hand on a raw socket.
    body = padded("raw-chunked@example.com", 80 * 1024)
    headers = signed_headers(server, "POST", "/v1/members", body[:LIMIT])
    head = "POST /v1/members HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    status, answer = raw_exchange(server, head.encode() + chunked(body))
    assert status == 413 and b"request_too_large" in answer
    # A portal form too: never parsed from its first 64 KiB.
    session = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(server.url + "/signup").text).group(1)
    form = (f"csrf_token={token}&business_name=Cut&email=cut%40example.com&password=".encode()
            + b"p" * (70 * 1024))
    res = session.post(server.url + "/signup", data=iter([form[i:i + 4096] for i in range(0, len(form), 4096)]),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False, timeout=30)
    assert res.status_code == 413 and "Too much data" in res.text
    # Within the limit a chunked body is read whole.
    for size in (200, LIMIT):
        body = padded(f"whole{size}@example.com", size)
        res = requests.post(server.url + "/v1/members", data=iter([body]),
                            headers=signed_headers(server, "POST", "/v1/members", body), timeout=30)
        assert res.status_code == 201, (size, res.text)


def test_bytes_that_are_not_utf8_on_the_wire_are_400_naming_the_parameter_or_path(server):
    auth = f"Authorization: Bearer {server.creds['test_key']}\r\n"
    for target, param in [(b"/v1/referrals/validate?code=%FF", b'"param":"code"'),
                          (b"/v1/referrals/validate?code=%FE", b'"param":"code"'),
                          (b"/v1/members?%C0%AF=1", b'"param":"%C0%AF"'),
                          (b"/v1/members/mem_%FF", b'"param":"path"'),
                          (b"/v1/members/%ED%A0%80/stamps", b'"param":"path"')]:
        status, answer = raw_exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      + auth.encode() + b"\r\n")
        assert status == 400 and b'"code":"invalid_request"' in answer and param in answer, (target, answer)
    # Raw (unescaped) bytes: gunicorn either refuses the request line itself or hands them
    # over; either way the answer is a 400, never a signature check or a 500.
    for target in (b"/v1/referrals/validate?code=\xff", b"/v1/members/mem_\xfe"):
        status, answer = raw_exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      + auth.encode() + b"\r\n")
        assert status == 400, (target, answer)


def test_text_no_database_stores_is_400_on_the_real_server(server):
    for raw, param in [(b'{"email": "a@example.com", "name": "\\ud800"}', "name"),
                       (b'{"email": "a@example.com", "external_id": "x\\u0000"}', "external_id"),
                       (b'{"\\udfff": 1}', "\\udfff")]:
        res = requests.post(server.url + "/v1/members", data=raw,
                            headers=signed_headers(server, "POST", "/v1/members", raw), timeout=10)
        assert res.status_code == 400, res.text
        assert (res.json()["error"]["code"], res.json()["error"]["param"]) == ("invalid_request", param)
    res = requests.get(server.url + "/v1/members/%00", headers=signed_headers(server, "GET", "/v1/members/%00"),
                       timeout=10)
    assert res.status_code == 400 and res.json()["error"]["param"] == "path"
    assert "Traceback" not in server.log_text


def test_a_request_writes_one_log_line_whatever_its_path_holds(server):
    forged = "2026-01-01 00:00:00,000 INFO portal.api: api req_forged POST /v1/members/mem_1/cashback/redeem 201 1.0ms"
    ids = []
    for separator in ("%0A", "%0D%0A", "%E2%80%A8", "%1B[2K%0D"):
        path = f"/v1/members/mem_x{separator}{forged.replace(' ', '%20')}"
        res = requests.get(server.url + path, headers=signed_headers(server, "GET", path), timeout=10)
        assert res.status_code == 404
        ids.append(res.headers["X-Request-Id"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(rid in server.log_text for rid in ids):
        time.sleep(0.05)
    lines = server.log_text.splitlines()
    for rid in ids:
        mine = [line for line in lines if rid in line]
        assert len(mine) == 1 and "\\" in mine[0], mine
    assert not [line for line in lines if line.startswith("2026-01-01 00:00:00,000")]  # no forged line
