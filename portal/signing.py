"""LOYALTY-HMAC-SHA256-V1, the server side (DESIGN.md §4).

The canonical string is eight lines: the scheme, the method, the canonical path, the
canonical query, the App ID, the timestamp, the nonce and the SHA-256 of the body. The
SDK builds the same string in `loyalty_sdk.signing`; both are tested against
tests/signing-vectors.json.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qsl, quote

SCHEME = "LOYALTY-HMAC-SHA256-V1"
SIGNATURE_PREFIX = "v1="
TIMESTAMP_TOLERANCE = 300  # seconds either way
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_path(path: str) -> str:
    """A decoded path, percent-encoded as UTF-8 except `A-Z a-z 0-9 - . _ ~ /`."""
    return quote(path, safe="/-._~")


def canonical_query(query_string: str) -> str:
    """Pairs decoded (`+` is a space, blanks kept), re-encoded, sorted, joined with `&`."""
    pairs = parse_qsl(query_string, keep_blank_values=True, encoding="utf-8", errors="replace")
    encoded = sorted((quote(name, safe="-._~"), quote(value, safe="-._~")) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_string(
    method: str, path: str, query_string: str, body: bytes, *, app_id: str, timestamp: str, nonce: str
) -> str:
    """The string that is signed. `path` is already percent-decoded (as WSGI gives it)."""
    return "\n".join(
        (
            SCHEME,
            method.upper(),
            canonical_path(path),
            canonical_query(query_string),
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
