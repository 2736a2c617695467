"""Key guardrails at the gate (DESIGN.md §4 checks 6 and 8, §13): allowed IPs and per-key
rate limits, with RateLimit-* headers on every answer to a known key."""

from __future__ import annotations

import pytest

from portal import create_app, db
from portal.domain import Invalid
from portal.domain.guardrails import parse_allowed_ips, parse_rate_limit
from portal.models import ApiKey, Application, Partner
from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def restrict(app, creds, *, allowed_ips="", rate_limit=None):
    with app.app_context():
        key = ApiKey.select().join(Application).where(Application.app_id == creds.app_id).order_by(ApiKey.id.desc()).first()
        ApiKey.update(allowed_ips=allowed_ips, rate_limit=rate_limit).where(ApiKey.id == key.id).execute()


def from_address(api, address):
    api.client.environ_base["REMOTE_ADDR"] = address
    return api


def test_a_key_with_an_allowed_range_refuses_a_call_from_outside_it(app, api, creds):
    restrict(app, creds, allowed_ips="203.0.113.0/24\n2001:db8::/32")
    response = from_address(api, "198.51.100.9").get("/v1/key")
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "ip_not_allowed" and error["type"] == "permission_error"
    assert "198.51.100.9" in error["message"]


@pytest.mark.parametrize("address", ["203.0.113.77", "2001:db8::1", "::ffff:203.0.113.5"])
def test_a_key_answers_calls_from_inside_its_allowed_ranges(app, api, creds, address):
    restrict(app, creds, allowed_ips="203.0.113.0/24\n2001:db8::/32")
    assert from_address(api, address).get("/v1/key").status_code == 200


def test_a_key_without_allowed_ips_answers_from_anywhere(api):
    assert from_address(api, "198.51.100.9").get("/v1/key").status_code == 200


def test_the_address_seen_is_the_one_the_trusted_proxy_forwards(tmp_path, database_url):
    proxied = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                          "PASSWORD_HASHING": "fast", "TRUSTED_PROXIES": "1"})
    try:
        creds = create_credentials(proxied)
        restrict(proxied, creds, allowed_ips="203.0.113.7")
        api = SignedClient(proxied.test_client(), creds)
        assert api.get("/v1/key", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
        refused = api.get("/v1/key", headers={"X-Forwarded-For": "192.0.2.1"})
        assert error_of(refused)["code"] == "ip_not_allowed" and "192.0.2.1" in error_of(refused)["message"]
    finally:
        db.close_all()


def test_ip_not_allowed_comes_after_account_disabled_and_before_insufficient_scope(app, client, creds):
    limited = add_key(app, creds, scopes=["card_read"])
    restrict(app, limited, allowed_ips="203.0.113.7")
    api = from_address(SignedClient(client, limited), "192.0.2.1")
    assert error_of(api.get("/v1/members"))["code"] == "ip_not_allowed"  # not insufficient_scope
    with app.app_context():
        Partner.update(status="disabled").execute()
    assert error_of(api.get("/v1/members"))["code"] == "account_disabled"


def test_every_answer_to_a_known_key_carries_ratelimit_headers(app, api, creds):
    first = api.get("/v1/key")
    assert first.headers["RateLimit-Limit"] == "600"
    assert first.headers["RateLimit-Remaining"] == "599"
    assert 1 <= int(first.headers["RateLimit-Reset"]) <= 60
    refused = api.get("/v1/members/mem_nope")  # a 404 counts too
    assert refused.status_code == 404 and refused.headers["RateLimit-Remaining"] == "598"
    unsigned = api.get("/v1/key", sign_request=False)  # a known key, refused before check 8
    assert unsigned.status_code == 401 and unsigned.headers["RateLimit-Remaining"] == "598"
    unknown = api.get("/v1/key", headers={"Authorization": "Bearer nope"})
    assert "RateLimit-Limit" not in unknown.headers


def test_over_the_keys_limit_the_answer_is_429_rate_limited_with_retry_after(app, api, creds):
    restrict(app, creds, rate_limit=3)
    statuses = [api.get("/v1/key").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = api.get("/v1/key")
    error = error_of(response)
    assert error["code"] == "rate_limited" and error["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Limit"] == "3" and response.headers["RateLimit-Remaining"] == "0"


def test_the_limit_is_per_key(app, api, client, creds):
    restrict(app, creds, rate_limit=1)
    other = SignedClient(client, add_key(app, creds))
    assert api.get("/v1/key").status_code == 200
    assert api.get("/v1/key").status_code == 429
    assert other.get("/v1/key").status_code == 200


def test_insufficient_scope_is_answered_before_the_rate_limit(app, client, creds):
    limited = add_key(app, creds, scopes=["card_read"])
    restrict(app, limited, rate_limit=1)
    api = SignedClient(client, limited)
    api.get("/v1/key")
    assert error_of(api.get("/v1/members"))["code"] == "insufficient_scope"


@pytest.mark.sqlite_only  # input checks: no SQL involved
@pytest.mark.parametrize("raw, message", [
    ("10.0.0.0/33", "is not an IP address or CIDR range"),
    ("10.0.0.300", "is not an IP address or CIDR range"),
    ("fe80::1/129", "is not an IP address or CIDR range"),
    ("x" * 500, "…"),
])
def test_malformed_allowed_ips_are_refused_naming_the_entry(app, raw, message):
    with pytest.raises(Invalid) as refused:
        parse_allowed_ips(raw)
    assert message in refused.value.message and refused.value.field == "allowed_ips"


@pytest.mark.sqlite_only  # input checks: no SQL involved
def test_allowed_ips_are_normalised_and_anywhere_is_named():
    parsed = parse_allowed_ips("10.1.2.3/8, 2001:DB8::1\n::/0")
    assert parsed.text == "10.0.0.0/8\n2001:db8::1\n::/0"
    assert "::/0 means anywhere" in parsed.note
    assert parse_allowed_ips("  ").text == "" and parse_allowed_ips("").note is None


@pytest.mark.sqlite_only  # input checks: no SQL involved
@pytest.mark.parametrize("raw", ["0", "-1", "601", "1000000000", "1e3", "99999999999999999999999"])
def test_bad_requests_per_minute_are_refused(app, raw):
    with app.app_context(), pytest.raises(Invalid) as refused:
        parse_rate_limit(raw, "test")
    assert refused.value.field == "rate_limit"


@pytest.mark.sqlite_only  # input checks: no SQL involved
def test_requests_per_minute_up_to_the_default(app):
    with app.app_context():
        assert parse_rate_limit("", "prod") is None
        assert parse_rate_limit("3000", "prod") is None  # the default itself
        assert parse_rate_limit("2999", "prod") == 2999


def test_with_redis_away_the_limit_still_holds_through_the_database(tmp_path, database_url, caplog, monkeypatch):
    from portal import rate_limits
    from tests.conftest import free_port

    monkeypatch.setattr(rate_limits, "_redis_warned_at", -1e9)  # warned once a minute per process

    away = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                       "PASSWORD_HASHING": "fast", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        creds = create_credentials(away)
        restrict(away, creds, rate_limit=2)
        api = SignedClient(away.test_client(), creds)
        assert [api.get("/v1/key").status_code for _ in range(3)] == [200, 200, 429]
        assert "Redis unavailable" in caplog.text
    finally:
        db.close_all()


def test_calls_refused_for_their_scope_or_account_do_not_use_up_the_keys_limit(app, client, creds):
    limited = add_key(app, creds, scopes=["card_read"])
    restrict(app, limited, rate_limit=2)
    api = SignedClient(client, limited)
    refused = [error_of(api.get("/v1/members"))["code"] for _ in range(3)]
    assert refused == ["insufficient_scope"] * 3
    with app.app_context():
        Partner.update(status="disabled").execute()
    assert [error_of(api.get("/v1/key"))["code"] for _ in range(3)] == ["account_disabled"] * 3
    with app.app_context():
        Partner.update(status="active").execute()
    assert [api.get("/v1/key").status_code for _ in range(3)] == [200, 200, 429]


def test_calls_from_outside_the_allowed_ips_do_not_use_up_the_keys_limit(app, api, creds):
    restrict(app, creds, allowed_ips="203.0.113.0/24", rate_limit=2)
    outside = [from_address(api, "192.0.2.1").get("/v1/key").status_code for _ in range(5)]
    assert outside == [403] * 5
    inside = [from_address(api, "203.0.113.9").get("/v1/key").status_code for _ in range(3)]
    assert inside == [200, 200, 429]
