"""Retries through a fault-injecting proxy in front of the live server, and clock-skew correction."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from loyalty_sdk import APIError, RateLimitError


def _email() -> str:
    return f"retry-{secrets.token_hex(4)}@example.com"


def test_a_dropped_connection_is_retried_with_a_fresh_signature(make_client, proxy):
    client = make_client(base_url=proxy.url)
    proxy.fail_next("drop", path_prefix="/v1/key")
    info = client.key_info()
    assert info.mode == "test"
    attempts = proxy.seen("/v1/key")
    assert len(attempts) == 2 and attempts[1].status == 200
    assert attempts[0].headers["X-Loyalty-Nonce"] != attempts[1].headers["X-Loyalty-Nonce"]
    assert attempts[0].headers["X-Loyalty-Signature"] != attempts[1].headers["X-Loyalty-Signature"]


def test_a_post_whose_connection_dropped_is_retried_with_the_same_idempotency_key(make_client, proxy):
    client = make_client(base_url=proxy.url)
    client.key_info()
    email = _email()
    proxy.fail_next("drop", path_prefix="/v1/members")
    member = client.members.create(email=email, name="Dropped Once")
    attempts = proxy.seen("/v1/members", method="POST")
    assert len(attempts) == 2
    keys = {a.headers["Idempotency-Key"] for a in attempts}
    assert len(keys) == 1 and 1 <= len(keys.pop()) <= 255
    assert len({a.headers["X-Loyalty-Nonce"] for a in attempts}) == 2
    assert [m.id for m in client.members.list(email=email)] == [member.id]


def test_a_503_after_the_write_was_applied_does_not_apply_it_twice(make_client, proxy):
    client = make_client(base_url=proxy.url)
    client.key_info()
    email = _email()
    proxy.fail_next("after_upstream", status=503, path_prefix="/v1/members",
                    headers={"Content-Type": "application/json"},
                    body=json.dumps({"error": {"type": "api_error", "code": "service_unavailable",
                                               "message": "try again"}}).encode())
    member = client.members.create(email=email, name="Written Once")
    attempts = proxy.seen("/v1/members", method="POST")
    assert [a.forwarded for a in attempts] == [True, True]  # the server saw the write twice…
    assert attempts[0].status == 503 and attempts[1].status == 201
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    assert [m.id for m in client.members.list(email=email)] == [member.id]  # …and applied it once


def test_a_503_after_a_cashback_credit_credits_once(make_client, proxy):
    client = make_client(base_url=proxy.url)
    member = client.members.create(email=_email())
    proxy.fail_next("after_upstream", status=503, path_prefix=f"/v1/members/{member.id}/cashback/credit",
                    body=b"<html>503 Service Unavailable</html>", headers={"Content-Type": "text/html"})
    entry = client.cashback.credit(member.id, amount=250, reference="order-1")
    assert entry.amount == 250 and entry.balance_after == 250
    assert len(proxy.seen(f"/v1/members/{member.id}/cashback/credit")) == 2
    assert client.cashback.balance(member.id).balance == 250
    assert len(list(client.cashback.history(member.id))) == 1


def test_429_is_retried_after_the_servers_retry_after(make_client, proxy):
    client = make_client(base_url=proxy.url)
    proxy.fail_next("answer", status=429, path_prefix="/v1/key", headers={"Retry-After": "1",
                    "Content-Type": "application/json"},
                    body=b'{"error":{"type":"rate_limit_error","code":"rate_limited","message":"slow down"}}')
    started = time.monotonic()
    assert client.key_info().mode == "test"
    assert time.monotonic() - started >= 0.95
    assert len(proxy.seen("/v1/key")) == 2


def test_a_retry_after_longer_than_the_client_waits_is_raised_with_its_hint(make_client, proxy):
    client = make_client(base_url=proxy.url, max_retry_delay=2)
    proxy.fail_next("answer", status=429, path_prefix="/v1/key", headers={"Retry-After": "30",
                    "Content-Type": "application/json", "X-Request-Id": "req_fromproxy"},
                    body=b'{"error":{"type":"rate_limit_error","code":"rate_limited","message":"slow down"}}')
    with pytest.raises(RateLimitError) as caught:
        client.key_info()
    assert caught.value.retry_after == 30 and caught.value.status == 429
    assert caught.value.request_id == "req_fromproxy"
    assert len(proxy.seen("/v1/key")) == 1


def test_5xx_is_retried_max_retries_times_then_raised(make_client, proxy):
    client = make_client(base_url=proxy.url, max_retries=2)
    for _ in range(3):
        proxy.fail_next("answer", status=503, path_prefix="/v1/key", body=b"upstream unavailable")
    with pytest.raises(APIError) as caught:
        client.key_info()
    assert caught.value.status == 503 and "upstream unavailable" in str(caught.value)
    assert len(proxy.seen("/v1/key")) == 3


def test_max_retries_zero_sends_once(make_client, proxy):
    client = make_client(base_url=proxy.url, max_retries=0)
    proxy.fail_next("answer", status=500, path_prefix="/v1/key", body=b"boom")
    with pytest.raises(APIError):
        client.key_info()
    assert len(proxy.seen("/v1/key")) == 1


def test_a_client_clock_an_hour_slow_is_corrected_from_the_servers_date_header(make_client, proxy):
    client = make_client(base_url=proxy.url, clock=lambda: time.time() - 3600)
    assert client.key_info().mode == "test"
    attempts = proxy.seen("/v1/key")
    assert [a.status for a in attempts] == [401, 200]
    assert abs(client.clock_offset - 3600) < 5
    client.key_info(refresh=True)  # the learned offset sticks: no more refusals
    assert [a.status for a in proxy.seen("/v1/key")] == [401, 200, 200]


def test_a_client_clock_ahead_is_corrected_too(make_client):
    client = make_client(clock=lambda: time.time() + 7200)
    assert client.key_info().mode == "test"
    assert abs(client.clock_offset + 7200) < 5


def test_retries_are_logged_with_the_request_id_and_without_the_key(make_client, proxy, demo, caplog):
    client = make_client(base_url=proxy.url)
    proxy.fail_next("answer", status=503, path_prefix="/v1/key", body=b"busy",
                    headers={"X-Request-Id": "req_busyproxy"})
    with caplog.at_level("INFO", logger="loyalty_sdk"):
        client.key_info()
    assert "HTTP 503" in caplog.text and "req_busyproxy" in caplog.text and "attempt 2 of 3" in caplog.text
    assert demo["test_key"] not in caplog.text and demo["app_secret"] not in caplog.text
