"""The /v1 gate (DESIGN.md §4): every failure code by its own test, in the documented order."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from portal.models import ApiKey, Application, Partner, utcnow
from tests.api.helpers import SignedClient, add_key, canonical, create_credentials, error_of, sign


def wait_for_start_of_second():
    """Return just after a second boundary, so a request sent now is answered within the
    same second and a timestamp offset by N seconds is seen as exactly N seconds off."""
    fraction = time.time() % 1
    if fraction > 0.05:
        time.sleep(1.0 - fraction + 0.01)


def assert_error(response, status, code, error_type):
    assert response.status_code == status, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == code
    assert error["type"] == error_type
    assert error["request_id"].startswith("req_")
    assert response.headers["X-Request-Id"] == error["request_id"]
    return error


# 1. the key's presence and shape


@pytest.mark.sqlite_only  # header check before any lookup
def test_request_without_authorization_is_refused_with_missing_api_key(api):
    assert_error(api.get("/v1/key", headers={"Authorization": None}), 401, "missing_api_key", "authentication_error")


@pytest.mark.sqlite_only  # header check before any lookup
@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-key", "test_sk_abc"])
def test_authorization_of_the_wrong_shape_is_refused_with_malformed_api_key(api, header):
    assert_error(api.get("/v1/key", headers={"Authorization": header}), 401, "malformed_api_key",
                 "authentication_error")


@pytest.mark.sqlite_only  # checksum check before any lookup
def test_key_with_a_bad_checksum_is_refused_with_malformed_api_key(api, signing_vectors):
    for bad in signing_vectors["api_key_format"]["invalid"]:
        response = api.get("/v1/key", headers={"Authorization": f"Bearer {bad}"})
        assert_error(response, 401, "malformed_api_key", "authentication_error")
    good = api.creds.api_key
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    error = assert_error(api.get("/v1/key", headers={"Authorization": f"Bearer {flipped}"}), 401,
                         "malformed_api_key", "authentication_error")
    assert "checksum" in error["message"]


# 2. the key itself


def test_unknown_well_formed_key_is_refused_with_invalid_api_key(api, signing_vectors):
    unknown = signing_vectors["api_key_format"]["valid"][0]
    assert_error(api.get("/v1/key", headers={"Authorization": f"Bearer {unknown}"}), 401, "invalid_api_key",
                 "authentication_error")


def test_revoked_key_is_refused_with_revoked_api_key(app, api):
    with app.app_context():
        ApiKey.update(revoked_at=utcnow()).execute()
    assert_error(api.get("/v1/key"), 401, "revoked_api_key", "authentication_error")


def test_key_past_its_expiry_is_refused_with_expired_api_key(app, api):
    with app.app_context():
        ApiKey.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert_error(api.get("/v1/key"), 401, "expired_api_key", "authentication_error")


def test_rolled_key_keeps_working_until_its_expiry(app, api):
    with app.app_context():
        ApiKey.update(expires_at=utcnow() + timedelta(hours=1)).execute()
    assert api.get("/v1/key").status_code == 200


# 3. the application


@pytest.mark.sqlite_only  # header check
def test_request_without_app_id_is_refused_with_missing_app_id(api):
    assert_error(api.get("/v1/key", headers={"X-Loyalty-App-Id": None}), 401, "missing_app_id",
                 "authentication_error")


def test_another_applications_id_is_refused_with_app_mismatch(app, client, creds):
    other = create_credentials(app, business="Other Shop")
    # Signed correctly with the other application's id and secret, but our key.
    mixed = SignedClient(client, other.with_key(creds.api_key))
    assert_error(mixed.get("/v1/key"), 401, "app_mismatch", "authentication_error")


# 4. the signature


@pytest.mark.sqlite_only  # header check
@pytest.mark.parametrize("dropped", ["X-Loyalty-Signature", "X-Loyalty-Nonce"])
def test_unsigned_request_is_refused_with_missing_signature(api, dropped):
    assert_error(api.get("/v1/key", headers={dropped: None}), 401, "missing_signature", "authentication_error")


@pytest.mark.sqlite_only  # header check
def test_request_without_timestamp_is_refused_with_timestamp_out_of_range(api):
    assert_error(api.get("/v1/key", headers={"X-Loyalty-Timestamp": None}), 401, "timestamp_out_of_range",
                 "authentication_error")


@pytest.mark.sqlite_only  # header check
@pytest.mark.parametrize("value", ["soon", "1767225600.5", "", "1e9"])
def test_non_integer_timestamp_is_refused_with_timestamp_out_of_range(api, value):
    assert_error(api.get("/v1/key", timestamp=value), 401, "timestamp_out_of_range", "authentication_error")


@pytest.mark.sqlite_only  # clock arithmetic, no SQL
@pytest.mark.parametrize("offset", [301, -301])
def test_timestamp_301_seconds_off_is_refused_with_timestamp_out_of_range(api, offset):
    wait_for_start_of_second()
    error = assert_error(api.get("/v1/key", timestamp=int(time.time()) + offset), 401, "timestamp_out_of_range",
                         "authentication_error")
    assert "301 s" in error["message"]


@pytest.mark.sqlite_only  # clock arithmetic, no SQL
@pytest.mark.parametrize("offset", [299, -299])
def test_timestamp_within_the_window_is_accepted(api, offset):
    wait_for_start_of_second()
    assert api.get("/v1/key", timestamp=int(time.time()) + offset).status_code == 200


@pytest.mark.sqlite_only  # signature arithmetic, no SQL
def test_wrong_signature_is_refused_with_invalid_signature_and_the_canonical_string(api):
    response = api.get("/v1/members?limit=5&email=a%40b.c", secret="secret_" + "x" * 32,
                       nonce="nonce-0123456789abcdef", timestamp=int(time.time()))
    error = assert_error(response, 401, "invalid_signature", "authentication_error")
    timestamp = response.request.headers["X-Loyalty-Timestamp"]
    assert error["canonical_string"] == canonical(
        "GET", "/v1/members?limit=5&email=a%40b.c", b"", app_id=api.creds.app_id, timestamp=timestamp,
        nonce="nonce-0123456789abcdef")
    assert api.creds.app_secret not in response.get_data(as_text=True)


@pytest.mark.sqlite_only  # signature arithmetic, no SQL
def test_signature_over_a_different_body_is_refused_with_invalid_signature(api):
    headers = {"Authorization": f"Bearer {api.creds.api_key}", "Content-Type": "application/json",
               **sign("POST", "/v1/members", b'{"email":"a@example.com"}',
                      app_id=api.creds.app_id, app_secret=api.creds.app_secret)}
    response = api.client.open("/v1/members", method="POST", data=b'{"email":"evil@example.com"}', headers=headers)
    assert_error(response, 401, "invalid_signature", "authentication_error")


@pytest.mark.sqlite_only  # header check
@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space in it!!"])
def test_nonce_of_the_wrong_shape_is_refused(api, nonce):
    error = assert_error(api.get("/v1/key", nonce=nonce), 401, "invalid_signature", "authentication_error")
    assert "X-Loyalty-Nonce" in error["message"]


def test_replayed_nonce_is_refused_with_replayed_request(api):
    first = api.get("/v1/key", nonce="nonce-replay-000000001")
    assert first.status_code == 200
    again = api.get("/v1/key", nonce="nonce-replay-000000001")
    assert_error(again, 401, "replayed_request", "authentication_error")


def test_same_nonce_in_another_application_is_not_a_replay(app, client, api):
    other = SignedClient(client, create_credentials(app, business="Other Shop"))
    assert api.get("/v1/key", nonce="nonce-shared-0000000001").status_code == 200
    assert other.get("/v1/key", nonce="nonce-shared-0000000001").status_code == 200


def test_previous_secret_works_during_its_grace_period_and_not_after(app, api):
    from portal.domain.applications import regenerate_secret
    from portal.models import AppSecret

    with app.app_context():
        application = Application.get(Application.app_id == api.creds.app_id)
        new_secret = regenerate_secret(application, grace="1h")
    assert api.get("/v1/key").status_code == 200  # the old secret
    assert api.get("/v1/key", secret=new_secret).status_code == 200
    with app.app_context():
        AppSecret.update(expires_at=utcnow() - timedelta(seconds=1)).where(AppSecret.expires_at.is_null(False)).execute()
    assert_error(api.get("/v1/key"), 401, "invalid_signature", "authentication_error")
    assert api.get("/v1/key", secret=new_secret).status_code == 200


# 5. the account


def test_suspended_partner_is_refused_with_account_disabled(app, api):
    with app.app_context():
        Partner.update(status="suspended").where(Partner.id == api.creds.partner_id).execute()
    assert_error(api.get("/v1/key"), 403, "account_disabled", "permission_error")


def test_disabled_application_is_refused_with_account_disabled(app, api):
    with app.app_context():
        Application.update(status="disabled").where(Application.app_id == api.creds.app_id).execute()
    assert_error(api.get("/v1/key"), 403, "account_disabled", "permission_error")


# 6. the scope


def test_key_without_the_scope_is_refused_with_insufficient_scope(app, client, creds):
    narrow = SignedClient(client, add_key(app, creds, scopes=["stamps_read"]))
    error = assert_error(narrow.get("/v1/members"), 403, "insufficient_scope", "permission_error")
    assert error["required_scope"] == "member_read"


def test_write_scope_does_not_imply_its_read_twin(app, client, creds):
    writer = SignedClient(client, add_key(app, creds, scopes=["member_write"]))
    assert writer.post("/v1/members", json={"email": "w@example.com"}).status_code == 201
    assert error_of(writer.get("/v1/members"))["required_scope"] == "member_read"


def test_key_endpoint_needs_no_scope(app, client, creds):
    narrow = SignedClient(client, add_key(app, creds, scopes=["cashback_read"], mode="prod"))
    body = narrow.get("/v1/key").get_json()
    assert body["scopes"] == ["cashback_read"]
    assert body["mode"] == "prod"
    assert body["app_id"] == creds.app_id


# Order and isolation


def test_checks_run_in_the_documented_order(app, api):
    """A revoked key with no app id and no signature reports the earliest failure."""
    with app.app_context():
        ApiKey.update(revoked_at=utcnow()).execute()
    response = api.get("/v1/key", headers={"X-Loyalty-App-Id": None, "X-Loyalty-Signature": None})
    assert error_of(response)["code"] == "revoked_api_key"


@pytest.mark.sqlite_only  # the order of two checks in Python
def test_bad_signature_is_reported_before_a_missing_scope(app, client, creds):
    narrow = SignedClient(client, add_key(app, creds, scopes=["stamps_read"]))
    assert error_of(narrow.get("/v1/members", secret="secret_" + "y" * 32))["code"] == "invalid_signature"


def test_other_modes_member_is_not_found(app, client, api, creds):
    member_id = api.post("/v1/members", json={"email": "mode@example.com"}).get_json()["id"]
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    assert_error(prod.get(f"/v1/members/{member_id}"), 404, "resource_missing", "not_found")
    assert prod.get("/v1/members").get_json()["data"] == []
    assert api.get(f"/v1/members/{member_id}").status_code == 200


def test_another_partners_member_is_not_found(app, client, api):
    member_id = api.post("/v1/members", json={"email": "mine@example.com"}).get_json()["id"]
    other = SignedClient(client, create_credentials(app, business="Other Shop"))
    assert_error(other.get(f"/v1/members/{member_id}"), 404, "resource_missing", "not_found")
    assert_error(other.patch(f"/v1/members/{member_id}", json={"name": "x"}), 404, "resource_missing", "not_found")


def test_last_used_at_is_recorded_without_a_write_per_request(app, api):
    with app.app_context():
        assert ApiKey.get().last_used_at is None
    api.get("/v1/key")
    with app.app_context():
        first = ApiKey.get().last_used_at
        assert first is not None
        # Pretend the write happened 10 s ago: the next requests must not rewrite it.
        ApiKey.update(last_used_at=first - timedelta(seconds=10)).execute()
    api.get("/v1/key")
    api.get("/v1/key")
    with app.app_context():
        assert ApiKey.get().last_used_at == first - timedelta(seconds=10)


def test_expired_nonces_are_cleaned_up(app, api):
    from portal.api import gate
    from portal.models import Nonce

    api.get("/v1/key")
    with app.app_context():
        Nonce.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    gate._next_cleanup = 0.0  # the next request is due to clean up
    api.get("/v1/key")
    with app.app_context():
        assert Nonce.select().count() == 1  # only the latest request's nonce
