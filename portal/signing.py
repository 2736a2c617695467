"""LOYALTY-HMAC-SHA256-V1, the server side (DESIGN.md §4).

The canonical string is eight lines: the scheme, the method, the canonical path, the
canonical query, the App ID, the timestamp, the nonce and the SHA-256 of the body. The
SDK builds the same string in `loyalty_sdk.signing`; both are tested against
tests/signing-vectors.json.

Percent-escapes are decoded as UTF-8 strictly. Decoding them leniently would map every
invalid byte to U+FFFD, so `?code=%FF` and `?code=%FE` would share one canonical string
(and one signature) while the views read different values. A path or query whose escapes
are not UTF-8 therefore has no canonical string: `query_pairs` and `decode_wsgi_path`
refuse it (the API answers 400 `invalid_request` before it checks the signature), and the
views read the very pairs that were signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote_to_bytes

SCHEME = "LOYALTY-HMAC-SHA256-V1"
SIGNATURE_PREFIX = "v1="
TIMESTAMP_TOLERANCE = 300  # seconds either way
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


class NotUtf8(ValueError):
    """A path or query whose percent-escapes (or raw bytes) are not UTF-8. `param` names
    the query parameter (as sent, when its name is what fails), None for the path."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def decode_wsgi_path(path_info: str) -> str:
    """The path as text, from the WSGI `PATH_INFO` (already percent-decoded by the server,
    its bytes handed over as latin-1); NotUtf8 when those bytes are not UTF-8."""
    try:
        return path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise NotUtf8("The path's percent-escapes are not UTF-8; encode the path as UTF-8.") from None


def _component(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def query_pairs(query_string: str | bytes) -> list[tuple[str, str]]:
    """The raw query's name/value pairs, in order: split on `&`, then on the first `=`
    (a missing `=` is a blank value), `+` is a space, escapes decoded as UTF-8 strictly
    (NotUtf8 naming the parameter otherwise). A str is taken as the query's UTF-8 text."""
    raw = query_string.encode("utf-8") if isinstance(query_string, str) else query_string
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        try:
            name = _component(raw_name)
        except UnicodeDecodeError:
            sent = raw_name.decode("ascii", "backslashreplace")
            raise NotUtf8(f"The query parameter name {sent} is not UTF-8 once its escapes are decoded.",
                          sent) from None
        try:
            value = _component(raw_value)
        except UnicodeDecodeError:
            raise NotUtf8(f"The value of {name} is not UTF-8 once its escapes are decoded; "
                          "percent-encode it as UTF-8.", name) from None
        pairs.append((name, value))
    return pairs


def canonical_path(path: str) -> str:
    """A decoded path, percent-encoded as UTF-8 except `A-Z a-z 0-9 - . _ ~ /`."""
    return quote(path, safe="/-._~")


def canonical_query(query: str | bytes | Sequence[tuple[str, str]]) -> str:
    """Pairs decoded (`+` is a space, blanks kept), re-encoded, sorted, joined with `&`.
    `query` is the raw query string, or the pairs `query_pairs` already made of it."""
    pairs = query_pairs(query) if isinstance(query, (str, bytes)) else query
    encoded = sorted((quote(name, safe="-._~"), quote(value, safe="-._~")) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_string(
    method: str, path: str, query: str | bytes | Sequence[tuple[str, str]], body: bytes, *, app_id: str,
    timestamp: str, nonce: str,
) -> str:
    """The string that is signed. `path` is already percent-decoded (as WSGI gives it);
    `query` is the raw query or its pairs (see `canonical_query`)."""
    return "\n".join(
        (
            SCHEME,
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            app_id,
            str(timestamp),
            nonce,
            hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256,
        )
    )


def signature(secret: str, canonical: str) -> str:
    """The header value: `v1=` + lowercase hex HMAC-SHA256(secret, canonical string)."""
    digest = hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_matches(secrets_: list[str], canonical: str, provided: str) -> bool:
    """Constant-time check of `provided` against every currently valid secret.

    Every candidate is compared (no early exit), so timing does not tell which one of
    the current and the grace-period secret matched.
    """
    provided_bytes = provided.encode("utf-8", "replace")
    matched = False
    for secret in secrets_:
        expected = signature(secret, canonical).encode("ascii")
        matched |= hmac.compare_digest(expected, provided_bytes)
    return matched
