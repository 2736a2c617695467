"""LOYALTY-HMAC-SHA256-V1 request signing, usable with any HTTP client.

The canonical string is eight lines joined by ``\\n``: the scheme, the upper-case method,
the canonical path, the canonical query, the App ID, the timestamp, the nonce and the hex
SHA-256 of the raw body. The signature is ``v1=`` + hex HMAC-SHA256 of that string under
the App Secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
import zlib
from typing import Callable, Union
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests
from requests.auth import AuthBase

SCHEME = "LOYALTY-HMAC-SHA256-V1"
SIGNATURE_PREFIX = "v1="

HEADER_APP_ID = "X-Loyalty-App-Id"
HEADER_TIMESTAMP = "X-Loyalty-Timestamp"
HEADER_NONCE = "X-Loyalty-Nonce"
HEADER_SIGNATURE = "X-Loyalty-Signature"

KEY_PREFIXES = {"test_sk_": "test", "prod_sk_": "prod"}
KEY_BODY_LENGTH = 32
CHECKSUM_LENGTH = 6
API_KEY_LENGTH = 8 + KEY_BODY_LENGTH + CHECKSUM_LENGTH  # 46 in both modes

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # 0-9A-Za-z
_ALNUM = frozenset(string.ascii_letters + string.digits)
_APP_ID_RE = re.compile(r"^app_[a-z0-9]{16}$")
_APP_SECRET_RE = re.compile(r"^secret_[A-Za-z0-9]{32}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_PATH_SAFE = "/-._~"
_QUERY_SAFE = "-._~"

Body = Union[bytes, bytearray, str, None]


def _body_bytes(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    raise TypeError(
        f"a signed body must be bytes, str or None, not {type(body).__name__} "
        "(streamed and multipart bodies cannot be signed: serialise the JSON first)"
    )


def canonical_path(path: str) -> str:
    """The path percent-decoded once, then re-encoded as UTF-8 (upper-case hex) except ``A-Z a-z 0-9 - . _ ~ /``.

    Raises ``ValueError`` when the escapes are not UTF-8 (``%FF``): the server refuses such
    a path with 400 ``invalid_request`` rather than sign it.
    """
    try:
        return quote(unquote(path or "/", encoding="utf-8", errors="strict"), safe=_PATH_SAFE)
    except UnicodeError:
        raise ValueError("the path's percent-escapes are not UTF-8, so it cannot be signed") from None


def canonical_query(query: str) -> str:
    """The query's name/value pairs (``+`` and ``%20`` are spaces, blanks kept), each re-encoded, sorted, joined by ``&``.

    Raises ``ValueError`` when an escape is not UTF-8 (``%FF``): the server refuses such a
    query with 400 ``invalid_request`` rather than sign it.
    """
    if not query:
        return ""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
        encoded = sorted((quote(name, safe=_QUERY_SAFE), quote(value, safe=_QUERY_SAFE)) for name, value in pairs)
    except UnicodeError:
        raise ValueError("the query's percent-escapes are not UTF-8, so it cannot be signed") from None
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_string(
    method: str, url: str, body: Body, *, app_id: str, timestamp: int | str, nonce: str
) -> str:
    """Build the string that LOYALTY-HMAC-SHA256-V1 signs.

    ``url`` is a full URL (``https://host/v1/members?limit=10``) or a path with its query
    (``/v1/members?limit=10``), exactly as it goes on the wire; ``body`` is the raw body
    (bytes, str encoded as UTF-8, or None for none).
    """
    parts = urlsplit(url)
    raw = _body_bytes(body)
    return "\n".join(
        (
            SCHEME,
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            app_id,
            str(timestamp),
            nonce,
            hashlib.sha256(raw).hexdigest() if raw else _EMPTY_BODY_SHA256,
        )
    )


def signature_header(app_secret: str, canonical: str) -> str:
    """``v1=`` + the lowercase hex HMAC-SHA256 of ``canonical`` under ``app_secret``."""
    digest = hmac.new(app_secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def new_nonce() -> str:
    """A fresh single-use nonce: 24 URL-safe characters from ``secrets`` (144 bits)."""
    return secrets.token_urlsafe(18)


def sign(
    method: str,
    url: str,
    body: Body,
    *,
    app_id: str,
    app_secret: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign one request and return its four ``X-Loyalty-*`` headers.

    ``timestamp`` defaults to now (Unix seconds) and ``nonce`` to a fresh random one; pass
    them only to reproduce a known signature. Add ``Authorization: Bearer <api key>``
    yourself, or use :class:`LoyaltyAuth`, which does both.
    """
    if timestamp is None:
        timestamp = int(time.time())
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ValueError(f"timestamp must be an integer number of Unix seconds, not {timestamp!r}")
    if nonce is None:
        nonce = new_nonce()
    elif not _NONCE_RE.match(nonce):
        raise ValueError("a nonce is 16-64 characters of A-Z, a-z, 0-9, '_' and '-'")
    canonical = canonical_string(method, url, body, app_id=app_id, timestamp=timestamp, nonce=nonce)
    return {
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature_header(app_secret, canonical),
    }


def _base62(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return digits.rjust(CHECKSUM_LENGTH, "0")


def key_checksum(head: str) -> str:
    """The 6-character checksum of a key's first 40 characters: base62 of their unsigned CRC32."""
    return _base62(zlib.crc32(head.encode("utf-8")) & 0xFFFFFFFF)


def check_api_key(key: str) -> str:
    """Check an API key's shape and checksum offline and return its mode (``"test"`` or ``"prod"``).

    Raises ``ValueError`` saying whether the prefix, the length, the characters or the
    checksum is wrong; the message never repeats the key itself.
    """
    if not isinstance(key, str):
        raise ValueError(f"an API key is a string, not {type(key).__name__}")
    mode = KEY_PREFIXES.get(key[:8])
    if mode is None:
        raise ValueError(
            "the API key's prefix is wrong: a key starts with test_sk_ or prod_sk_ "
            "(an App ID starts with app_ and an App Secret with secret_)"
        )
    if len(key) != API_KEY_LENGTH:
        raise ValueError(
            f"the API key's length is wrong: a key is {API_KEY_LENGTH} characters long, "
            f"this one is {len(key)} (was it cut when copied?)"
        )
    if not _ALNUM.issuperset(key[8:]):
        raise ValueError(
            "the API key holds characters it cannot contain: after the prefix only A-Z, a-z "
            "and 0-9 (was whitespace or a quote copied along?)"
        )
    if not hmac.compare_digest(key_checksum(key[:-CHECKSUM_LENGTH]), key[-CHECKSUM_LENGTH:]):
        raise ValueError("the API key's checksum does not match: the key was mistyped or altered")
    return mode


def check_app_id(app_id: str) -> str:
    """Raise ``ValueError`` unless ``app_id`` looks like an App ID (``app_`` + 16 of a-z0-9)."""
    if not isinstance(app_id, str) or not _APP_ID_RE.match(app_id):
        raise ValueError("an App ID is app_ followed by 16 lower-case letters and digits")
    return app_id


def check_app_secret(app_secret: str) -> str:
    """Raise ``ValueError`` unless ``app_secret`` looks like an App Secret (``secret_`` + 32 of A-Za-z0-9)."""
    if not isinstance(app_secret, str) or not _APP_SECRET_RE.match(app_secret):
        if isinstance(app_secret, str) and app_secret.startswith(("test_sk_", "prod_sk_")):
            raise ValueError("that is an API key, not the App Secret (secret_…): the two were swapped")
        raise ValueError("an App Secret is secret_ followed by 32 letters and digits")
    return app_secret


def mask_key(key: str) -> str:
    """A key as pages show it: prefix + first 4 + ``…`` + last 4."""
    return f"{key[:12]}…{key[-4:]}" if len(key) > 16 else "…"


class LoyaltyAuth(AuthBase):
    """A ``requests`` auth object adding the API key and a fresh LOYALTY-HMAC-SHA256-V1 signature.

    ``requests.get(url, auth=LoyaltyAuth(app_id=..., app_secret=..., api_key=...))``.
    Each time a request is prepared it gets a new timestamp and nonce. The credentials
    are checked here, so a malformed one fails at construction rather than as a 401.
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        api_key: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_app_id(app_id)
        check_app_secret(app_secret)
        self.mode = check_api_key(api_key)
        self.app_id = app_id
        self._app_secret = app_secret
        self._api_key = api_key
        self._authorization = "Bearer " + api_key
        self.clock = clock
        self.clock_offset = 0.0  # seconds to add to `clock()` to match the server's clock

    def __repr__(self) -> str:
        return f"LoyaltyAuth(app_id={self.app_id!r}, api_key={mask_key(self._api_key)!r})"

    def now(self) -> int:
        """The Unix time this object signs with: the local clock plus any learned offset."""
        return int(self.clock() + self.clock_offset)

    def signed_headers(self, method: str, url: str, body: Body) -> dict[str, str]:
        """The five authentication headers for one request, freshly timestamped."""
        headers = sign(method, url, body, app_id=self.app_id, app_secret=self._app_secret, timestamp=self.now())
        headers["Authorization"] = self._authorization
        return headers

    def canonical_for(self, request: requests.PreparedRequest) -> str:
        """The canonical string of an already signed request (to compare with the server's)."""
        return canonical_string(
            request.method or "GET", request.url or "/", request.body,
            app_id=request.headers.get(HEADER_APP_ID, self.app_id),
            timestamp=request.headers.get(HEADER_TIMESTAMP, ""),
            nonce=request.headers.get(HEADER_NONCE, ""),
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.signed_headers(request.method or "GET", request.url or "/", request.body))
        return request

