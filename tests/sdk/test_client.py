"""LoyaltyClient against the live server: construction, key info, scopes, errors."""

from __future__ import annotations

import platform
import re
import secrets

import pytest
from loyalty_sdk import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InsufficientScopeError,
    InvalidRequestError,
    KeyInfo,
    LoyaltyClient,
    LoyaltyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    __version__,
)

from tests.sdk.conftest import create_key

APP_ID = "app_k3j9x0q2m5n8p1r4"
SECRET = "secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae"
KEY = "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2"
GOOD = dict(app_id=APP_ID, app_secret=SECRET, api_key=KEY, base_url="https://loyalty.example.com")


@pytest.mark.parametrize("change, words", [
    ({"api_key": KEY[:-1] + "x"}, "checksum"),
    ({"api_key": "live_sk_" + KEY[8:]}, "prefix"),
    ({"api_key": None}, "api_key is missing"),
    ({"app_secret": ""}, "app_secret is missing"),
    ({"app_id": None}, "app_id is missing"),
    ({"app_id": "app_123"}, "App ID"),
    ({"base_url": "loyalty.example.com"}, "scheme"),
    ({"base_url": "127.0.0.1:8000"}, "scheme"),
    ({"base_url": "ftp://loyalty.example.com"}, "scheme"),
    ({"base_url": "https://loyalty.example.com/v1"}, "without /v1"),
    ({"base_url": None}, "base_url is missing"),
])
def test_bad_configuration_is_refused_at_construction_with_a_clear_message(change, words):
    with pytest.raises(ConfigurationError, match=words) as caught:
        LoyaltyClient(**{**GOOD, **change})
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LoyaltyError)
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)


def test_from_env_reads_the_four_variables_and_names_the_missing_ones():
    client = LoyaltyClient.from_env({"LOYALTY_APP_ID": APP_ID, "LOYALTY_APP_SECRET": SECRET,
                                     "LOYALTY_API_KEY": KEY, "LOYALTY_BASE_URL": "http://127.0.0.1:9/"})
    assert client.base_url == "http://127.0.0.1:9" and client.mode == "test"
    with pytest.raises(ConfigurationError, match="LOYALTY_API_KEY, LOYALTY_BASE_URL"):
        LoyaltyClient.from_env({"LOYALTY_APP_ID": APP_ID, "LOYALTY_APP_SECRET": SECRET})


def test_client_repr_masks_the_key():
    assert KEY not in repr(LoyaltyClient(**GOOD))


def test_calls_reuse_one_connection_and_the_context_manager_closes_it(make_client, proxy):
    with make_client(base_url=proxy.url) as client:
        for _ in range(3):
            client.key_info(refresh=True)
        pools = client._session.get_adapter(proxy.url).poolmanager.pools
        assert len(pools) == 1
    assert len({seen.client_port for seen in proxy.requests}) == 1  # one kept-alive connection
    assert len(pools) == 0


def test_key_info_is_typed_and_cached(client, demo, proxy, make_client):
    client = make_client(base_url=proxy.url)
    info = client.key_info()
    assert isinstance(info, KeyInfo)
    assert info.app_id == demo["app_id"] and info.mode == "test"
    assert "stamps_write" in info.scopes and info.expires_at is None
    assert info.raw["object"] == "api_key" and info["name"] == info.name
    assert client.has_scope("stamps_write") and client.has_scope("cashback_read")
    client.require_scopes("stamps_read", "stamps_write")
    assert len(proxy.seen("/v1/key")) == 1  # fetched once, then cached
    client.key_info(refresh=True)
    assert len(proxy.seen("/v1/key")) == 2


def test_require_scopes_names_the_missing_ones(live_server, demo, make_client):
    key = create_key(live_server, demo["app_id"], "stamps_read", "card_read")
    client = make_client(api_key=key)
    assert client.has_scope("stamps_read") and not client.has_scope("stamps_write")
    with pytest.raises(InsufficientScopeError) as caught:
        client.require_scopes("stamps_read", "stamps_write", "cashback_write")
    assert caught.value.missing == ["stamps_write", "cashback_write"]
    assert isinstance(caught.value, PermissionDeniedError)
    with pytest.raises(ValueError, match="unknown scope"):
        client.has_scope("stamp_write")


def test_a_method_without_its_scope_raises_before_anything_is_sent(stamps_read_key, make_client, proxy):
    client = make_client(api_key=stamps_read_key, base_url=proxy.url)
    client.key_info()
    before = len(proxy.requests)
    refused = [
        lambda: client.stamps.add("mem_anything", card_id="card_x", count=1),
        lambda: client.stamps.redeem("mem_anything", card_id="card_x", reward_id="rwd_x"),
        lambda: client.members.create(email="ana@example.com"),
        lambda: client.members.list(),
        lambda: client.cashback.balance("mem_anything"),
        lambda: client.claims.list(status="pending"),
        lambda: client.referrals.apply(code="ABC", member_id="mem_anything"),
        lambda: client.cards.get("card_x"),
    ]
    for call in refused:
        with pytest.raises(InsufficientScopeError) as caught:
            call()
        assert caught.value.status is None and len(caught.value.missing) == 1
    assert "stamps_write" in str(pytest.raises(InsufficientScopeError, refused[0]).value)
    assert len(proxy.requests) == before  # the server received nothing


def test_a_wrong_app_secret_shows_both_canonical_strings(live_server, demo, make_client):
    client = make_client(app_secret="secret_" + "A" * 32)
    with pytest.raises(AuthenticationError) as caught:
        client.key_info()
    error = caught.value
    assert error.status == 401 and error.code == "invalid_signature"
    assert error.request_id and error.request_id.startswith("req_")
    assert error.server_canonical_string.startswith("LOYALTY-HMAC-SHA256-V1\nGET\n/v1/key\n")
    assert error.server_canonical_string == error.sdk_canonical_string
    text = str(error)
    assert "server | SDK" in text and "/v1/key" in text and "App Secret" in text


def test_a_differing_canonical_string_is_marked_line_by_line():
    error = AuthenticationError("The signature does not match.", status=401, code="invalid_signature",
                                server_canonical_string="A\nGET\n/v1/x", sdk_canonical_string="A\nGET\n/v1/y")
    lines = str(error).splitlines()
    assert any(line.startswith("≠ 3:") and "/v1/x" in line and "/v1/y" in line for line in lines)


def test_a_revoked_or_unknown_key_is_an_authentication_error_with_the_request_id(make_client):
    client = make_client(api_key="test_sk_0000000000000000000000000000000034UfLs")
    with pytest.raises(AuthenticationError) as caught:
        client.key_info()
    assert caught.value.code == "invalid_api_key" and caught.value.status == 401
    assert caught.value.request_id.startswith("req_")
    assert "invalid_api_key" in str(caught.value)
    assert str(caught.value).count(caught.value.request_id) == 1


def test_every_error_class_names_its_request_id_the_same_way_for_pasting_into_the_request_log():
    made = [
        LoyaltyError("Boom.", status=500, request_id="req_a1"),
        APIError("Upstream failed.", status=502, code="bad_gateway", request_id="req_a1"),
        AuthenticationError("The signature does not match.", status=401, code="invalid_signature",
                            request_id="req_a1", server_canonical_string="A\nB", sdk_canonical_string="A\nC"),
        PermissionDeniedError("Disabled.", status=403, code="account_disabled", request_id="req_a1"),
        InsufficientScopeError("Needs stamps_write.", status=403, missing=["stamps_write"], request_id="req_a1"),
        InvalidRequestError("Too long.", status=400, code="invalid_parameter", param="email", request_id="req_a1"),
        NotFoundError("No such member.", status=404, code="member_not_found", request_id="req_a1"),
        ConflictError("Not enough stamps.", status=409, code="insufficient_stamps", request_id="req_a1"),
        RateLimitError("Slow down.", status=429, code="rate_limited", retry_after=3, request_id="req_a1"),
    ]
    for error in made:
        first_line = str(error).splitlines()[0]
        assert first_line.endswith(" (request req_a1)"), first_line
        assert str(error).count("req_a1") == 1
    # A message that already names the request (the gate's "see the request log for …") keeps it once.
    named = NotFoundError("No such member; see the request log for req_b2.", status=404, request_id="req_b2")
    assert str(named) == "[404] No such member; see the request log for req_b2."
    assert "(request" not in str(LoyaltyError("Not sent.")) and "(request" not in str(APIConnectionError("Down."))


def test_every_request_carries_the_sdk_user_agent(make_client, proxy):
    client = make_client(base_url=proxy.url, retry_backoff=0)
    client.key_info()
    proxy.fail_next("after_upstream", status=503, path_prefix="/v1/members")  # one retry too
    client.members.create(email=f"ua-{secrets.token_hex(4)}@example.com")
    sent = {seen.headers.get("User-Agent") for seen in proxy.requests}
    assert len(proxy.requests) == 3
    assert sent == {f"loyalty-sdk/{__version__} python/{platform.python_version()}"}
    assert re.fullmatch(r"loyalty-sdk/\d+\.\d+\.\d+ python/\d+\.\d+\.\d+\S*", sent.pop())


def test_an_unreachable_server_is_an_api_connection_error_not_a_requests_exception(demo):
    client = LoyaltyClient(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                           base_url="http://127.0.0.1:9", max_retries=1, retry_backoff=0.01)
    with pytest.raises(APIConnectionError) as caught:
        client.key_info()
    assert "2 attempts" in str(caught.value)


def test_a_non_json_error_page_from_a_proxy_is_an_api_error_with_status_and_body(make_client, proxy):
    client = make_client(base_url=proxy.url, max_retries=0)
    proxy.fail_next("answer", status=502, headers={"Content-Type": "text/html"},
                    body=b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    with pytest.raises(APIError) as caught:
        client.key_info()
    assert caught.value.status == 502
    assert "502 Bad Gateway" in str(caught.value)


def test_a_non_json_404_from_a_proxy_is_an_api_error_too(make_client, proxy):
    client = make_client(base_url=proxy.url)
    proxy.fail_next("answer", status=404, headers={"Content-Type": "text/plain"}, body=b"no route here")
    with pytest.raises(APIError) as caught:
        client.key_info()
    assert caught.value.status == 404 and "no route here" in str(caught.value)


def test_a_base_url_with_whitespace_is_refused():
    with pytest.raises(ConfigurationError):
        LoyaltyClient(**{**GOOD, "base_url": "http://loyalty example.com"})


def test_the_servers_insufficient_scope_becomes_insufficient_scope_error(stamps_read_key, make_client):
    client = make_client(api_key=stamps_read_key)
    # request() is the unchecked lower layer, so this reaches the server's own scope check
    with pytest.raises(InsufficientScopeError) as caught:
        client.request("POST", "/v1/members/mem_x/stamps", json_body={"card_id": "card_x", "count": 1})
    assert caught.value.status == 403 and caught.value.missing == ["stamps_write"]
    assert caught.value.request_id.startswith("req_")


def test_an_otp_cooldown_is_raised_with_retry_after_rather_than_waited_out(client):
    member = client.members.create(email=f"otp-{secrets.token_hex(4)}@example.com")
    client.members.request_otp(member.id, channel="email")
    with pytest.raises(RateLimitError) as caught:
        client.members.request_otp(member.id, channel="email")
    assert caught.value.status == 429 and caught.value.code == "otp_cooldown"
    assert caught.value.retry_after and caught.value.retry_after > client.max_retry_delay


def test_a_request_still_in_progress_is_retried(make_client, proxy):
    client = make_client(base_url=proxy.url)
    proxy.fail_next("answer", status=409, path_prefix="/v1/members", headers={"Content-Type": "application/json"},
                    body=b'{"error":{"type":"conflict","code":"idempotency_request_in_progress","message":"wait"}}')
    member = client.members.create(email=f"inprogress-{secrets.token_hex(4)}@example.com")
    attempts = proxy.seen("/v1/members", method="POST")
    assert [a.status for a in attempts] == [409, 201] and member.id.startswith("mem_")
