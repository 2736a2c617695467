"""Signing alone (DESIGN.md §4, §7): the vectors, check_api_key, and LoyaltyAuth with plain requests."""

from __future__ import annotations

import loyalty_sdk
import pytest
import requests
from loyalty_sdk import LoyaltyAuth, canonical_string, check_api_key, sign

VALID_APP_ID = "app_k3j9x0q2m5n8p1r4"
VALID_SECRET = "secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae"
VALID_KEY = "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2"


def _cases(signing_vectors):
    return signing_vectors["cases"]


def test_sdk_reproduces_every_canonical_string_and_signature_in_the_vectors(signing_vectors):
    assert len(_cases(signing_vectors)) >= 7
    for case in _cases(signing_vectors):
        body = case["body_utf8"].encode("utf-8")
        canonical = canonical_string(case["method"], case["path_and_query"], body,
                                     app_id=case["app_id"], timestamp=case["timestamp"], nonce=case["nonce"])
        assert canonical == case["canonical_string"], case["path_and_query"]
        headers = sign(case["method"], case["path_and_query"], body, app_id=case["app_id"],
                       app_secret=case["app_secret"], timestamp=case["timestamp"], nonce=case["nonce"])
        assert headers == {
            "X-Loyalty-App-Id": case["app_id"],
            "X-Loyalty-Timestamp": str(case["timestamp"]),
            "X-Loyalty-Nonce": case["nonce"],
            "X-Loyalty-Signature": case["signature_header"],
        }


def test_sdk_refuses_to_sign_every_refused_vector_as_the_server_refuses_it(signing_vectors):
    """Escapes that are not UTF-8 have no canonical string: the SDK raises ValueError (the
    server answers 400 invalid_request) instead of signing a string the server would not."""
    for case in signing_vectors["refused"]:
        with pytest.raises(ValueError, match="not UTF-8"):
            canonical_string(case["method"], case["path_and_query"], None, app_id=case["app_id"],
                             timestamp=case["timestamp"], nonce=case["nonce"])
        with pytest.raises(ValueError, match="not UTF-8"):
            sign(case["method"], "https://loyalty.example.com" + case["path_and_query"], None,
                 app_id=case["app_id"], app_secret=case["app_secret"], timestamp=case["timestamp"], nonce=case["nonce"])


def test_a_full_url_and_a_str_body_sign_the_same_as_a_path_and_bytes(signing_vectors):
    for case in _cases(signing_vectors):
        from_path = sign(case["method"], case["path_and_query"], case["body_utf8"].encode(), app_id=case["app_id"],
                         app_secret=case["app_secret"], timestamp=case["timestamp"], nonce=case["nonce"])
        from_url = sign(case["method"], "https://loyalty.example.com" + case["path_and_query"],
                        case["body_utf8"] or None, app_id=case["app_id"], app_secret=case["app_secret"],
                        timestamp=case["timestamp"], nonce=case["nonce"])
        assert from_url == from_path


def test_sign_makes_a_fresh_timestamp_and_nonce_each_time():
    first = sign("GET", "/v1/key", None, app_id=VALID_APP_ID, app_secret=VALID_SECRET)
    second = sign("GET", "/v1/key", None, app_id=VALID_APP_ID, app_secret=VALID_SECRET)
    assert first["X-Loyalty-Nonce"] != second["X-Loyalty-Nonce"]
    assert 16 <= len(first["X-Loyalty-Nonce"]) <= 64
    assert first["X-Loyalty-Timestamp"].isdigit()


def test_sign_refuses_a_nonce_the_server_would_refuse():
    with pytest.raises(ValueError, match="nonce"):
        sign("GET", "/v1/key", None, app_id=VALID_APP_ID, app_secret=VALID_SECRET, nonce="short")


def test_check_api_key_returns_the_mode_of_every_valid_key(signing_vectors):
    for key in signing_vectors["api_key_format"]["valid"]:
        assert check_api_key(key) == key[:4]


# What each invalid vector gets wrong, in the order the check finds it.
EXPECTED_FAULT = {
    "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vvA": "checksum",
    "test_sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "checksum",
    "live_sk_fT2gH8jK4lZ6xC0vB3nM7qW1eR5tY9uI08bW9i": "prefix",
    "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9a": "length",
    "sk_test_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2": "prefix",
}


def test_check_api_key_names_what_is_wrong_with_every_invalid_vector(signing_vectors):
    invalid = signing_vectors["api_key_format"]["invalid"]
    assert set(invalid) == set(EXPECTED_FAULT)
    for key in invalid:
        with pytest.raises(ValueError, match=EXPECTED_FAULT[key]) as caught:
            check_api_key(key)
        assert key not in str(caught.value)


@pytest.mark.parametrize("key, fault", [
    ("test_sk_" + "Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9a!" + "E1Q4vv", "characters"),
    (" " + VALID_KEY[1:], "prefix"),
    (VALID_KEY + "\n", "length"),
    (VALID_KEY[:20] + " " + VALID_KEY[21:], "characters"),
    ("", "prefix"),
])
def test_check_api_key_names_characters_prefix_and_length_faults(key, fault):
    with pytest.raises(ValueError, match=fault):
        check_api_key(key)


def test_check_api_key_refuses_a_non_string():
    with pytest.raises(ValueError):
        check_api_key(None)  # type: ignore[arg-type]


def test_loyalty_auth_refuses_malformed_credentials_at_construction():
    with pytest.raises(ValueError, match="checksum"):
        LoyaltyAuth(app_id=VALID_APP_ID, app_secret=VALID_SECRET, api_key=VALID_KEY[:-1] + "x")
    with pytest.raises(ValueError, match="App ID"):
        LoyaltyAuth(app_id="app_TOO_SHORT", app_secret=VALID_SECRET, api_key=VALID_KEY)
    with pytest.raises(ValueError, match="swapped"):
        LoyaltyAuth(app_id=VALID_APP_ID, app_secret=VALID_KEY, api_key=VALID_KEY)


def test_loyalty_auth_never_shows_the_key_or_secret_in_its_repr():
    auth = LoyaltyAuth(app_id=VALID_APP_ID, app_secret=VALID_SECRET, api_key=VALID_KEY)
    assert VALID_KEY not in repr(auth) and VALID_SECRET not in repr(auth)


def test_loyalty_auth_signs_plain_requests_calls_the_server_accepts(live_server, demo):
    auth = LoyaltyAuth(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"])
    first = requests.get(live_server.url + "/v1/key", auth=auth, timeout=10)
    again = requests.get(live_server.url + "/v1/key", auth=auth, timeout=10)  # a new nonce, so no replay
    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert first.json()["app_id"] == demo["app_id"]
    assert first.json()["mode"] == "test"


def test_signature_headers_from_sign_work_with_any_http_client(live_server, demo):
    headers = loyalty_sdk.sign("GET", live_server.url + "/v1/key?", None, app_id=demo["app_id"],
                               app_secret=demo["app_secret"])
    headers["Authorization"] = "Bearer " + demo["prod_key"]
    response = requests.get(live_server.url + "/v1/key", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "prod"
