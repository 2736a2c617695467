"""The server's own canonicalisation reproduces every signing vector, from real requests."""

from __future__ import annotations

import time
from urllib.parse import unquote_to_bytes

import pytest

from portal.config import current_settings
from portal.credentials import hash_api_key
from portal.models import ApiKey, Application, AppSecret, Partner
from portal.signing import signature
from tests.api.helpers import error_of

pytestmark = pytest.mark.sqlite_only  # canonicalisation and signatures, not the database


@pytest.fixture
def vector_app(app, signing_vectors):
    """The vectors' App ID, App Secret and keys, stored as the server stores them."""
    from portal.domain.applications import secret_box

    case = signing_vectors["cases"][0]
    with app.app_context():
        partner = Partner.create(name="Vector Shop")
        application = Application.create(partner=partner, app_id=case["app_id"], name="Vectors")
        AppSecret.create(application=application, ciphertext=secret_box().encrypt(case["app_secret"]),
                         last4=case["app_secret"][-4:])
        pepper = current_settings().key_pepper
        for key in {c["api_key"] for c in signing_vectors["cases"]}:
            ApiKey.create(application=application, name="vector", mode=key[:4], key_hash=hash_api_key(key, pepper),
                          first4=key[8:12], last4=key[-4:], scopes="member_read member_write stamps_write "
                          "referral_read")
    return app


def _send(client, case, *, timestamp, signature_header):
    body = case["body_utf8"].encode("utf-8")
    headers = {
        "Authorization": f"Bearer {case['api_key']}",
        "X-Loyalty-App-Id": case["app_id"],
        "X-Loyalty-Timestamp": str(timestamp),
        "X-Loyalty-Nonce": case["nonce"],
        "X-Loyalty-Signature": signature_header,
    }
    if body:
        headers["Content-Type"] = "application/json"
    return client.open(case["path_and_query"], method=case["method"], data=body, headers=headers)


def test_every_vector_signature_follows_from_its_canonical_string(signing_vectors):
    for case in signing_vectors["cases"]:
        assert signature(case["app_secret"], case["canonical_string"]) == case["signature_header"]


def test_server_canonicalises_every_vector_request_as_the_vector_says(vector_app, client, signing_vectors):
    """Each vector sent as a real request (with today's timestamp, since the vectors' own are
    long out of the window) and a wrong signature: the canonical string the server echoes
    is the vector's, with only the timestamp line differing."""
    for case in signing_vectors["cases"]:
        now = int(time.time())
        response = _send(client, case, timestamp=now, signature_header="v1=" + "0" * 64)
        error = error_of(response)
        assert error["code"] == "invalid_signature", (case["path_and_query"], error)
        expected = case["canonical_string"].split("\n")
        expected[5] = str(now)
        assert error["canonical_string"] == "\n".join(expected), case["path_and_query"]


def test_server_accepts_every_vector_request_signed_with_the_vector_secret(vector_app, client, signing_vectors):
    for case in signing_vectors["cases"]:
        now = int(time.time())
        lines = case["canonical_string"].split("\n")
        lines[5] = str(now)
        response = _send(client, case, timestamp=now, signature_header=signature(case["app_secret"], "\n".join(lines)))
        # Past the gate: whatever the endpoint then says, it is not an authentication error.
        assert response.status_code not in (401, 403), (case["path_and_query"], response.get_json())


def test_server_refuses_every_refused_vector_before_checking_its_signature(vector_app, client, signing_vectors):
    """Escapes that are not UTF-8 have no canonical string: 400 invalid_request naming the
    parameter (or `path`), whether the request is signed, wrongly signed or not at all."""
    assert len(signing_vectors["refused"]) >= 3
    for case in signing_vectors["refused"]:
        expected = case["error"]
        path, _, query = case["path_and_query"].partition("?")
        # PATH_INFO as a WSGI server hands it over: the percent-decoded bytes as latin-1.
        environ = {"PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query}
        now = int(time.time())
        for signature_header in ("v1=" + "0" * 64, None):
            headers = {} if signature_header is None else {
                "Authorization": f"Bearer {case['api_key']}", "X-Loyalty-App-Id": case["app_id"],
                "X-Loyalty-Timestamp": str(now), "X-Loyalty-Nonce": case["nonce"],
                "X-Loyalty-Signature": signature_header}
            response = client.open(path, method=case["method"], headers=headers, environ_overrides=environ)
            error = error_of(response)
            assert (response.status_code, error["code"], error["param"]) == (
                expected["status"], expected["code"], expected["param"]), (case["path_and_query"], error)
