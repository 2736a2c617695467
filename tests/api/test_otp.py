"""One-time codes: test mode's 000000, production delivery (console, SMTP, SMS webhook),
hashing, tries, expiry and send limits."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socketserver
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from portal.config import current_settings, use_settings
from portal.models import Member, Otp, OtpSend, utcnow
from tests.api.helpers import SignedClient, add_key, error_of


@pytest.fixture
def member(api):
    return api.post("/v1/members", json={"email": "otp@example.com", "phone": "+442079460958"}).get_json()


@pytest.fixture
def prod(app, client, creds):
    return SignedClient(client, add_key(app, creds, mode="prod"))


@pytest.fixture
def prod_member(prod):
    return prod.post("/v1/members", json={"email": "otp@example.com", "phone": "+442079460958"}).get_json()


def configure(app, **changes):
    """Change the running app's settings (e.g. smtp_url) for this test."""
    use_settings(dataclasses.replace(current_settings(), **changes))


def test_test_mode_code_is_000000_and_nothing_is_sent(api, member, caplog):
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        sent = api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"}).get_json()
    assert sent["delivered"] is False and sent["channel"] == "email"
    assert not [r for r in caplog.records if r.name == "portal.domain.otp"]
    verified = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "000000"}).get_json()
    assert verified["verified"] is True
    assert verified["member"]["verified"] is True
    assert api.get("/v1/members/validate?email=otp%40example.com").get_json()["verified"] is True


def test_code_is_stored_hashed_and_single_use(app, api, member):
    api.post(f"/v1/members/{member['id']}/otp", json={"channel": "sms"})
    with app.app_context():
        stored = Otp.get()
        assert "000000" not in stored.code_hash and len(stored.code_hash) == 64
    assert api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "000000"}).status_code == 200
    again = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "000000"})
    assert error_of(again)["code"] == "otp_not_found"


def test_five_wrong_tries_use_up_the_code(api, member):
    api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"})
    messages = []
    for _ in range(5):
        response = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "123456"})
        assert error_of(response)["code"] == "otp_incorrect"
        messages.append(error_of(response)["message"])
    assert "4 tries left" in messages[0]
    right_code_too_late = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "000000"})
    assert error_of(right_code_too_late)["code"] == "otp_attempts_exceeded"


def test_expired_code_is_refused(app, api, member):
    api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"})
    with app.app_context():
        Otp.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    response = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": "000000"})
    assert error_of(response)["code"] == "otp_expired"


def test_code_lives_ten_minutes(app, api, member):
    sent = api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"}).get_json()
    with app.app_context():
        otp = Otp.get()
        assert timedelta(minutes=9, seconds=58) < otp.expires_at - otp.created_at <= timedelta(minutes=10)
    assert sent["expires_at"].endswith("Z")


def test_second_code_within_30_seconds_is_refused_with_retry_after(api, member):
    api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"})
    response = api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"})
    assert response.status_code == 429
    assert error_of(response)["code"] == "otp_cooldown"
    assert error_of(response)["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["Retry-After"]) <= 31


def test_sixth_code_within_an_hour_is_refused(app, api, member):
    with app.app_context():
        row = Member.get(Member.public_id == member["id"])
        for minutes in (50, 40, 30, 20, 10):
            OtpSend.create(member=row, created_at=utcnow() - timedelta(minutes=minutes))
    response = api.post(f"/v1/members/{member['id']}/otp", json={"channel": "email"})
    assert response.status_code == 429
    assert error_of(response)["code"] == "otp_rate_limited"
    assert int(response.headers["Retry-After"]) > 500  # until the 50-minute-old send ages out


def test_a_new_code_replaces_the_old_one(app, prod, prod_member, caplog):
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "email"})
        with app.app_context():
            OtpSend.update(created_at=utcnow() - timedelta(minutes=1)).execute()
        prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "email"})
    codes = re.findall(r": (\d{6})$", "\n".join(r.getMessage() for r in caplog.records if r.name == "portal.domain.otp"),
                       re.M)
    assert len(codes) == 2
    if codes[0] != codes[1]:
        old = prod.post(f"/v1/members/{prod_member['id']}/otp/verify", json={"code": codes[0]})
        assert error_of(old)["code"] == "otp_incorrect"
    assert prod.post(f"/v1/members/{prod_member['id']}/otp/verify", json={"code": codes[1]}).status_code == 200


@pytest.mark.sqlite_only  # delivery, not SQL
def test_production_code_goes_to_the_console_by_default(prod, prod_member, caplog):
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        sent = prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "sms"}).get_json()
    assert sent["delivered"] is True
    line = next(r.getMessage() for r in caplog.records if r.name == "portal.domain.otp")
    assert "+442079460958" in line
    code = line.rsplit(": ", 1)[1]
    assert re.fullmatch(r"\d{6}", code)
    assert prod.post(f"/v1/members/{prod_member['id']}/otp/verify", json={"code": code}).status_code == 200


@pytest.mark.sqlite_only  # input validation
def test_channel_the_member_cannot_receive_is_refused(api):
    phone_only = api.post("/v1/members", json={"phone": "+442079460958"}).get_json()
    response = api.post(f"/v1/members/{phone_only['id']}/otp", json={"channel": "email"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "channel"


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", 123456])
def test_code_must_be_six_digits(api, member, code):
    response = api.post(f"/v1/members/{member['id']}/otp/verify", json={"code": code})
    assert response.status_code == 400
    assert error_of(response)["param"] == "code"


# -- real delivery to loopback servers ----------------------------------------------------


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message (the standard library has no server)."""

    def handle(self):
        self.wfile.write(b"220 localhost ESMTP test\r\n")
        data = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if data is not None:
                if line == b".\r\n":
                    self.server.messages.append(b"".join(data).decode())
                    data = None
                    self.wfile.write(b"250 OK\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == b"DATA":
                data = []
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sms_gateway():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.received = received
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.sqlite_only  # delivery, not SQL
def test_production_email_code_is_sent_by_smtp_when_configured(app, prod, prod_member, smtp_server):
    configure(app, smtp_url=f"smtp://127.0.0.1:{smtp_server.server_address[1]}", mail_from="shop@example.com")
    assert prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "email"}).status_code == 200
    (message,) = smtp_server.messages
    assert "To: otp@example.com" in message and "From: shop@example.com" in message
    code = re.search(r"code is (\d{6})", message).group(1)
    assert prod.post(f"/v1/members/{prod_member['id']}/otp/verify", json={"code": code}).status_code == 200


@pytest.mark.sqlite_only  # delivery, not SQL
def test_production_sms_code_is_posted_to_the_webhook_when_configured(app, prod, prod_member, sms_gateway):
    configure(app, sms_webhook=f"http://127.0.0.1:{sms_gateway.server_address[1]}/sms")
    assert prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "sms"}).status_code == 200
    (payload,) = sms_gateway.received
    assert payload["to"] == "+442079460958"
    assert prod.post(f"/v1/members/{prod_member['id']}/otp/verify", json={"code": payload["code"]}).status_code == 200


@pytest.mark.sqlite_only  # delivery, not SQL
def test_failed_delivery_is_reported_without_details(app, prod, prod_member):
    configure(app, sms_webhook="http://127.0.0.1:9/unreachable")
    response = prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "sms"})
    assert response.status_code == 502
    error = error_of(response)
    assert (error["type"], error["code"]) == ("api_error", "otp_delivery_failed")
    assert "127.0.0.1" not in error["message"]


def test_failed_delivery_leaves_no_code_and_does_not_count_as_a_send(app, prod, prod_member):
    """The code never reached the member: it is gone, and the member may ask again at once."""
    configure(app, sms_webhook="http://127.0.0.1:9/unreachable")
    for attempt in range(2):
        headers = {"Idempotency-Key": f"failing-{attempt}"} if attempt else {}
        response = prod.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "sms"}, headers=headers)
        assert error_of(response)["code"] == "otp_delivery_failed"  # not otp_cooldown the second time
        with app.app_context():
            assert Otp.select().count() == 0
            assert OtpSend.select().count() == 0


def test_slow_delivery_does_not_hold_up_other_requests(app, prod, prod_member):
    """The code is delivered outside any transaction: while a slow SMS gateway holds an OTP
    request (with an Idempotency-Key, as the SDK sends), the partner's other requests,
    also on the same member, are answered."""
    delivering = threading.Event()
    others_done = threading.Event()

    class SlowGateway(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            delivering.set()
            others_done.wait(timeout=3)  # a slow gateway, released early once the others are answered
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    gateway = HTTPServer(("127.0.0.1", 0), SlowGateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    configure(app, sms_webhook=f"http://127.0.0.1:{gateway.server_address[1]}/sms")
    answered, responses = [], {}

    def send_code():
        otp_client = SignedClient(app.test_client(), prod.creds)
        responses["otp"] = otp_client.post(f"/v1/members/{prod_member['id']}/otp", json={"channel": "sms"},
                                           headers={"Idempotency-Key": "slow-delivery"})
        answered.append("otp")

    sender = threading.Thread(target=send_code)
    sender.start()
    try:
        assert delivering.wait(timeout=10), "the OTP request never reached the gateway"
        other = SignedClient(app.test_client(), prod.creds)
        responses["key"] = other.get("/v1/key")
        answered.append("key")
        responses["rename"] = other.patch(f"/v1/members/{prod_member['id']}", json={"name": "Ana"})
        answered.append("rename")
    finally:
        others_done.set()
        sender.join(timeout=30)
        gateway.shutdown()
        gateway.server_close()
    assert answered == ["key", "rename", "otp"]
    assert [responses[name].status_code for name in answered] == [200, 200, 200]
    assert responses["otp"].get_json()["delivered"] is True
