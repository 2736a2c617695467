"""When the server's encryption keys cannot read an App Secret (a retired key dropped
before `rotate-encryption-key`, or a backup from before a rotation restored), signed
calls answer 503 in the API's error shape, never 500, and the log tells the operator
what to do, without the secret."""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet

from portal.credentials import SecretBox
from portal.models import AppSecret


def encrypt_under_a_key_the_server_no_longer_has(app, creds) -> None:
    lost = SecretBox([Fernet.generate_key().decode()])
    with app.app_context():
        AppSecret.update(ciphertext=lost.encrypt(creds.app_secret)).execute()


def test_a_secret_the_keys_cannot_read_is_a_503_with_one_clear_log_line(app, api, creds, caplog):
    encrypt_under_a_key_the_server_no_longer_has(app, creds)
    with caplog.at_level(logging.INFO, logger="portal.api"):
        res = api.get("/v1/key")
    assert res.status_code == 503
    error = res.get_json()["error"]
    assert error["type"] == "api_error" and error["code"] == "service_unavailable"
    assert error["request_id"] == res.headers["X-Request-Id"]
    assert res.headers["Retry-After"] == "60"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"api {error['request_id']} an App Secret of {creds.app_id} cannot be decrypted with "
                      "LOYALTY_ENCRYPTION_KEY: a retired key was dropped or a backup made under an older key was "
                      "restored; add that key back at the end of LOYALTY_ENCRYPTION_KEY (loyalty-portal check "
                      "lists what is unreadable); answered 503"]
    assert "unhandled" not in caplog.text and creds.app_secret not in caplog.text


def test_a_post_is_refused_the_same_way_and_writes_nothing(app, api, creds):
    from portal.models import Member

    encrypt_under_a_key_the_server_no_longer_has(app, creds)
    res = api.post("/v1/members", json={"email": "ana@example.com"}, headers={"Idempotency-Key": "k-1"})
    assert res.status_code == 503 and res.get_json()["error"]["code"] == "service_unavailable"
    with app.app_context():
        assert Member.select().count() == 0
