"""Credential formats (DESIGN.md §1): App IDs, App Secrets and API keys.

Generation uses `secrets`; API keys are stored only as HMAC-SHA256 under a server pepper
(190 bits of entropy need no slow hash, and the lookup stays one indexed equality);
App Secrets are encrypted at rest because the server needs them to verify signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # 0-9A-Za-z
ALNUM = string.ascii_letters + string.digits
APP_ID_ALPHABET = string.ascii_lowercase + string.digits

KEY_PREFIXES = {"test": "test_sk_", "prod": "prod_sk_"}
KEY_BODY_LENGTH = 32
CHECKSUM_LENGTH = 6
API_KEY_LENGTH = len("test_sk_") + KEY_BODY_LENGTH + CHECKSUM_LENGTH  # 46 for both modes

APP_ID_RE = re.compile(r"^app_[a-z0-9]{16}$")
APP_SECRET_RE = re.compile(r"^secret_[A-Za-z0-9]{32}$")
_KEY_RE = re.compile(r"^(test|prod)_sk_([A-Za-z0-9]{32})([0-9A-Za-z]{6})$")


class MalformedApiKey(ValueError):
    """The key is not shaped like an API key, or its checksum is wrong."""


def base62(number: int, width: int = CHECKSUM_LENGTH) -> str:
    """`number` in base 62 (alphabet 0-9A-Za-z), left-padded with `0` to `width`."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")


def key_checksum(head: str) -> str:
    """The 6-char checksum of everything before it: base62 of the unsigned CRC32."""
    return base62(zlib.crc32(head.encode("utf-8")) & 0xFFFFFFFF)


def _random_string(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_app_id() -> str:
    return "app_" + _random_string(APP_ID_ALPHABET, 16)


def generate_app_secret() -> str:
    return "secret_" + _random_string(ALNUM, 32)


def generate_api_key(mode: str) -> str:
    """A fresh `test_sk_…`/`prod_sk_…` key with its checksum."""
    head = KEY_PREFIXES[mode] + _random_string(ALNUM, KEY_BODY_LENGTH)
    return head + key_checksum(head)


def parse_api_key(key: str) -> str:
    """Check a key's shape and checksum without any lookup; return its mode.

    Raises MalformedApiKey saying which part is wrong.
    """
    if not isinstance(key, str):
        raise MalformedApiKey("the API key must be a string")
    if not key.startswith(tuple(KEY_PREFIXES.values())):
        raise MalformedApiKey("an API key starts with test_sk_ or prod_sk_")
    if len(key) != API_KEY_LENGTH:
        raise MalformedApiKey(f"an API key is {API_KEY_LENGTH} characters long, this one is {len(key)}")
    match = _KEY_RE.match(key)
    if not match:
        raise MalformedApiKey("an API key holds only the letters A-Z, a-z and digits after its prefix")
    if not hmac.compare_digest(key_checksum(key[:-CHECKSUM_LENGTH]), match.group(3)):
        raise MalformedApiKey("the API key's checksum does not match: it was mistyped or cut")
    return match.group(1)


def hash_api_key(key: str, pepper: bytes) -> str:
    """The stored form of a key: hex HMAC-SHA256 under the server's pepper."""
    return hmac.new(pepper, key.encode("utf-8"), hashlib.sha256).hexdigest()


class SecretUnreadable(ValueError):
    """A stored secret does not decrypt with any of the configured encryption keys."""


class SecretBox:
    """Encrypts App Secrets at rest with Fernet; the first key encrypts, every key decrypts
    (so the server's own encryption key can be rotated, see the README)."""

    def __init__(self, keys: tuple[str, ...] | list[str]):
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(
                "an App Secret cannot be decrypted with LOYALTY_ENCRYPTION_KEY"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first (newest) key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretUnreadable(
                "an App Secret cannot be decrypted with LOYALTY_ENCRYPTION_KEY"
            ) from None
