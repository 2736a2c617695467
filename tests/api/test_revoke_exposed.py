"""POST /v1/keys/revoke-exposed (DESIGN.md §13): anyone may report leaked keys; each
well-formed live key found is revoked at once and marked exposed; the answer is always 202
{"received": n}; reports are rate-limited per address."""

from __future__ import annotations

import json

import pytest

from portal.credentials import generate_api_key
from portal.models import ApiKey, AuditEvent
from tests.api.helpers import add_key, create_credentials, error_of

SOURCE = "https://github.com/example/shop/blob/main/.env"


def report(client, keys, source=SOURCE, **kwargs):
    return client.post("/v1/keys/revoke-exposed", data=json.dumps({"keys": keys, "source": source}),
                       content_type="application/json", **kwargs)


def test_a_reported_key_stops_working_on_its_very_next_request(app, client, api, creds):
    assert api.get("/v1/key").status_code == 200
    response = report(client, [creds.api_key])
    assert response.status_code == 202 and response.get_json() == {"received": 1}
    refused = api.get("/v1/key")
    assert refused.status_code == 401 and error_of(refused)["code"] == "revoked_api_key"
    with app.app_context():
        key = ApiKey.get(ApiKey.exposed_at.is_null(False))
        assert key.exposed_source == SOURCE and key.revoked_at is not None
        entry = AuditEvent.get(AuditEvent.action == "key.exposed")
        assert entry.partner_id == creds.partner_id and SOURCE in entry.detail
        assert creds.api_key not in entry.detail and entry.actor == "anonymous"


def test_the_answer_is_the_same_for_unknown_malformed_revoked_and_live_keys(app, client, creds):
    other = create_credentials(app, business="Other Shop")
    unknown = generate_api_key("prod")
    bad_checksum = creds.api_key[:-1] + ("A" if creds.api_key[-1] != "A" else "B")
    first = report(client, [unknown, bad_checksum, "not a key", other.api_key])
    again = report(client, [unknown, bad_checksum, "not a key", other.api_key])  # now already revoked
    assert first.status_code == again.status_code == 202
    assert first.get_json() == again.get_json() == {"received": 4}
    with app.app_context():
        assert [k.application.app_id for k in ApiKey.select().where(ApiKey.exposed_at.is_null(False))] == [other.app_id]
        assert AuditEvent.select().where(AuditEvent.action == "key.exposed").count() == 1


def test_only_the_reported_key_is_revoked(app, client, api, creds):
    spare = add_key(app, creds)
    report(client, [spare.api_key])
    assert api.get("/v1/key").status_code == 200


def test_an_already_revoked_key_keeps_its_revocation_and_is_not_marked_exposed(app, client, api, creds):
    with app.app_context():
        from portal.models import utcnow

        ApiKey.update(revoked_at=utcnow()).execute()
    report(client, [creds.api_key])
    with app.app_context():
        assert ApiKey.select().where(ApiKey.exposed_at.is_null(False)).count() == 0


@pytest.mark.sqlite_only  # request validation: refused before any SQL
@pytest.mark.parametrize("body, param", [
    ({"keys": ["x"] * 101, "source": SOURCE}, "keys"),
    ({"keys": [1, 2], "source": SOURCE}, "keys[0]"),
    ({"keys": [None], "source": SOURCE}, "keys[0]"),
    ({"keys": "test_sk_x", "source": SOURCE}, "keys"),
    ({"keys": ["k"], "source": "s" * 501}, "source"),
    ({"keys": ["k"], "source": 7}, "source"),
    ({"keys": ["k"]}, "source"),
    ({"source": SOURCE}, "keys"),
    ({"keys": ["k"], "source": SOURCE, "extra": 1}, "extra"),
])
def test_malformed_reports_are_refused_with_invalid_request(client, body, param):
    response = client.post("/v1/keys/revoke-exposed", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request" and error_of(response)["param"] == param


def test_ten_thousand_keys_are_refused_and_nothing_is_revoked(app, client, creds):
    response = report(client, [creds.api_key] * 10_000)
    assert response.status_code in (400, 413)
    with app.app_context():
        assert ApiKey.select().where(ApiKey.revoked_at.is_null(False)).count() == 0


def test_reports_are_rate_limited_per_address(app, client):
    statuses = [report(client, [], environ_base={"REMOTE_ADDR": "192.0.2.50"}).status_code for _ in range(21)]
    assert statuses == [202] * 20 + [429]
    refused = report(client, [], environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert error_of(refused)["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
    assert report(client, [], environ_base={"REMOTE_ADDR": "192.0.2.51"}).status_code == 202


def test_a_reported_key_reads_as_exposed(app, client, creds):  # its key-list row: tests/web/test_key_guardrails.py
    report(client, [creds.api_key])
    with app.app_context():
        from portal.models import utcnow

        key = ApiKey.get(ApiKey.exposed_at.is_null(False))
        assert key.status_at(utcnow()) == "exposed"
