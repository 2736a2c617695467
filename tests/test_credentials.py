"""Credential formats (DESIGN.md §1): what a partner copies out of the portal."""

import re

import pytest

from portal import credentials
from portal.credentials import MalformedApiKey, parse_api_key


def test_every_valid_example_key_parses_to_its_mode(signing_vectors):
    for key in signing_vectors["api_key_format"]["valid"]:
        assert parse_api_key(key) == key[:4]


def test_every_invalid_example_key_is_refused(signing_vectors):
    for key in signing_vectors["api_key_format"]["invalid"]:
        with pytest.raises(MalformedApiKey):
            parse_api_key(key)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("live_sk_fT2gH8jK4lZ6xC0vB3nM7qW1eR5tY9uI08bW9i", "starts with"),
        ("test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9a", "46 characters"),
        ("test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9a!1Q4vv2", "letters"),
        ("test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vvA", "checksum"),
    ],
)
def test_a_malformed_key_says_what_is_wrong(key, says):
    with pytest.raises(MalformedApiKey, match=says):
        parse_api_key(key)


@pytest.mark.parametrize("mode", ["test", "prod"])
def test_generated_keys_have_the_documented_shape_and_checksum(mode):
    keys = {credentials.generate_api_key(mode) for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(rf"{mode}_sk_[A-Za-z0-9]{{32}}[0-9A-Za-z]{{6}}", key)
        assert parse_api_key(key) == mode


def test_app_ids_and_secrets_have_the_documented_shape():
    for _ in range(100):
        assert re.fullmatch(r"app_[a-z0-9]{16}", credentials.generate_app_id())
        assert re.fullmatch(r"secret_[A-Za-z0-9]{32}", credentials.generate_app_secret())


def test_checksum_is_base62_crc32_left_padded():
    assert credentials.base62(0) == "000000"
    assert credentials.base62(61) == "00000z"
    assert credentials.base62(62) == "000010"
    assert credentials.base62(0xFFFFFFFF) == "4gfFC3"


def test_the_stored_hash_depends_on_the_pepper():
    key = credentials.generate_api_key("test")
    one = credentials.hash_api_key(key, b"pepper-one")
    assert re.fullmatch(r"[0-9a-f]{64}", one)
    assert one == credentials.hash_api_key(key, b"pepper-one")
    assert one != credentials.hash_api_key(key, b"pepper-two")
    assert key not in one


def test_secret_box_round_trips_and_rotates_to_the_newest_key():
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = credentials.SecretBox([old]).encrypt("secret_abc")
    assert "secret_abc" not in token
    rotated = credentials.SecretBox([new, old])
    assert rotated.decrypt(token) == "secret_abc"
    assert credentials.SecretBox([new]).decrypt(rotated.rotate(token)) == "secret_abc"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        credentials.SecretBox([new]).decrypt(token)
