"""The real server writes one line per API request: id, masked key, status, time; never
the key, the secret or a traceback."""

from __future__ import annotations

import time

import requests

from tests.api.helpers import SignedAuth


def wait_for_line(live_server, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in live_server.log_text.splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {needle}")


def test_each_api_request_is_logged_with_masked_key_status_and_time(live_server):
    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    ok = requests.get(live_server.url + "/v1/key", auth=auth, timeout=10)
    refused = requests.get(live_server.url + "/v1/members", auth=SignedAuth(demo["app_id"], "secret_" + "x" * 32,
                                                                            demo["test_key"]), timeout=10)
    assert (ok.status_code, refused.status_code) == (200, 401)
    key = demo["test_key"]
    for response, status in ((ok, 200), (refused, 401)):
        line = wait_for_line(live_server, response.headers["X-Request-Id"])
        assert f" {status} " in line and "ms" in line
        assert f"{key[:12]}…{key[-4:]}" in line
    text = live_server.log_text
    assert key not in text and demo["app_secret"] not in text and demo["prod_key"] not in text
    assert "Traceback" not in text


def test_production_otp_reaches_the_server_console(live_server):
    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["prod_key"])
    member = requests.post(live_server.url + "/v1/members", json={"email": "console@example.com"}, auth=auth,
                           timeout=10).json()
    sent = requests.post(live_server.url + f"/v1/members/{member['id']}/otp", json={"channel": "email"}, auth=auth,
                         timeout=10)
    assert sent.json()["delivered"] is True
    line = wait_for_line(live_server, f"OTP for {member['id']}")
    code = line.rsplit(": ", 1)[1].strip()
    verified = requests.post(live_server.url + f"/v1/members/{member['id']}/otp/verify", json={"code": code},
                             auth=auth, timeout=10)
    assert verified.status_code == 200 and verified.json()["member"]["verified"] is True
