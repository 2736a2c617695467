"""The SDK and the key guardrails (DESIGN.md §13) against a real server: ip_not_allowed,
rate_limited and otp_rate_limited map to the error tree; a 429 is retried after its
Retry-After with a fresh nonce; `loyalty-sdk scan` finds keys and `--report` revokes them."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from loyalty_sdk import (
    AuthenticationError,
    IPNotAllowedError,
    LoyaltyClient,
    OtpRateLimitError,
    PermissionDeniedError,
    RateLimitError,
)

from portal.credentials import generate_api_key
from tests.conftest import LiveServer
from tests.sdk.proxy import FaultProxy
from tests.sdk.test_cli import _command

LIMIT = 3


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A server of its own whose test keys may make 3 calls a minute."""
    server = LiveServer(tmp_path_factory.mktemp("limited"), env={"LOYALTY_RATE_LIMIT_TEST": str(LIMIT)}).start()
    yield server
    server.stop()


def client_for(server, demo, **options) -> LoyaltyClient:
    return LoyaltyClient(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                         base_url=options.pop("base_url", server.url), retry_backoff=0.01, **options)


def set_allowed_ips(server, text: str) -> None:
    """Give the server's keys allowed IPs, as the portal's Edit does."""
    from portal import create_app, db
    from portal.models import ApiKey

    app = create_app({"DATA_DIR": str(server.data_dir)})
    with app.app_context():
        ApiKey.update(allowed_ips=text).execute()
    db.close_all()


def test_the_error_tree_places_the_guardrail_errors():
    assert issubclass(IPNotAllowedError, PermissionDeniedError)
    assert issubclass(OtpRateLimitError, RateLimitError)


def test_a_429_from_the_keys_limit_is_retried_after_retry_after_with_a_fresh_nonce(limited_server):
    demo = limited_server.demo()
    with FaultProxy(limited_server.url) as proxy:
        client = client_for(limited_server, demo, base_url=proxy.url, max_retry_delay=61, max_retries=1)
        # Near the end of a minute, so the wait Retry-After asks for stays short.
        if time.time() % 60 < 55:
            time.sleep(55.5 - time.time() % 60)
        for _ in range(LIMIT):
            proxy_status = client._requestor.request("GET", "/v1/key")
            assert proxy_status["object"] == "api_key"
        started = time.monotonic()
        assert client._requestor.request("GET", "/v1/key")["object"] == "api_key"
        waited = time.monotonic() - started
        attempts = proxy.seen("/v1/key")
    assert [a.status for a in attempts[-2:]] == [429, 200]
    assert attempts[-2].headers["X-Loyalty-Nonce"] != attempts[-1].headers["X-Loyalty-Nonce"]
    assert 0.5 <= waited <= 8
    client.close()


def test_over_the_limit_without_waiting_raises_rate_limit_error_with_its_hint(limited_server):
    demo = limited_server.demo()
    client = client_for(limited_server, demo, max_retries=0)
    with pytest.raises(RateLimitError) as caught:
        for _ in range(LIMIT + 1):
            client._requestor.request("GET", "/v1/key")
    assert caught.value.code == "rate_limited" and type(caught.value) is RateLimitError
    assert 1 <= caught.value.retry_after <= 60
    client.close()


def test_a_call_from_outside_the_allowed_ips_raises_ip_not_allowed_error(tmp_path):
    server = LiveServer(tmp_path).start()
    try:
        demo = server.demo()
        set_allowed_ips(server, "203.0.113.0/24")
        client = client_for(server, demo)
        with pytest.raises(IPNotAllowedError) as caught:
            client.key_info()
        assert caught.value.code == "ip_not_allowed" and caught.value.status == 403
        assert "127.0.0.1" in str(caught.value)
        client.close()
    finally:
        server.stop()


def test_a_second_otp_within_30_seconds_raises_otp_rate_limit_error(live_server, demo):
    client = LoyaltyClient(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                           base_url=live_server.url, retry_backoff=0.01)
    member = client.members.create(email=f"otp-{os.getpid()}-{time.time_ns()}@example.com")
    client.members.request_otp(member.id, channel="email")
    with pytest.raises(OtpRateLimitError) as caught:
        client.members.request_otp(member.id, channel="email")
    assert caught.value.code == "otp_cooldown" and caught.value.retry_after > 10
    client.close()


# -- loyalty-sdk scan ---------------------------------------------------------------------


def run_scan(*args, env=None, cwd=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    environment.update(env or {})
    return subprocess.run([*_command(), "scan", *args], env=environment, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.fixture
def tree(tmp_path):
    """A project with one real-looking key in a nested file, look-alikes and a binary."""
    key = generate_api_key("prod")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "deep" / "settings.py").write_text(f'NAME = "shop"\nAPI_KEY = "{key}"\n')
    bad = key[:-1] + ("A" if key[-1] != "A" else "B")
    (tmp_path / "README.md").write_text(f"Use test_sk_… from the portal.\nNot a key: {bad}\n")
    (tmp_path / "image.bin").write_bytes(b"\0\1\2" + key.encode() + b"\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "COMMIT_EDITMSG").write_text(key)
    return tmp_path, key


def test_scan_prints_file_line_and_the_masked_key_and_exits_1(tree):
    root, key = tree
    result = run_scan(str(root))
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"{root}/src/deep/settings.py:2: {key[:12]}…{key[-4:]} (prod API key)\n"
    assert key not in result.stdout + result.stderr


def test_scan_of_clean_files_exits_0(tree):
    root, _ = tree
    result = run_scan(str(root / "README.md"), str(root / "image.bin"))
    assert result.returncode == 0 and result.stdout == ""


def test_scan_of_a_missing_path_is_a_usage_error(tmp_path):
    result = run_scan(str(tmp_path / "nope"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr


def test_scan_report_revokes_the_found_key_at_once(live_server, tmp_path):
    demo = live_server.demo()
    (tmp_path / ".env").write_text(f"LOYALTY_API_KEY={demo['test_key']}\n")
    client = LoyaltyClient(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                           base_url=live_server.url, max_retries=0)
    assert client.key_info().mode == "test"
    result = run_scan("--report", "--source", "https://example.com/leak", str(tmp_path),
                      env={"LOYALTY_BASE_URL": live_server.url})
    assert result.returncode == 1 and "revoked now" in result.stderr, result.stderr
    fresh = LoyaltyClient(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                          base_url=live_server.url, max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        fresh.key_info()
    assert caught.value.code == "revoked_api_key"
    client.close()
    fresh.close()


def test_scan_report_without_a_base_url_says_what_it_needs(tree):
    root, _ = tree
    result = run_scan("--report", str(root))
    assert result.returncode == 2 and "--base-url or LOYALTY_BASE_URL" in result.stderr
