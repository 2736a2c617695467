"""GET /v1/key: what the calling key is allowed to do (the SDK caches this)."""

from __future__ import annotations

from flask import request

from portal import rate_limits
from portal.api.errors import ApiError
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Array, Body, String
from portal.domain.guardrails import EXPOSED_KEYS_MAX, EXPOSED_SOURCE_MAX, revoke_exposed
from portal.models import isoformat
from portal.scopes import SCOPE_NAMES

KEY_INFO = schema_ref("KeyInfo", {
    "type": "object",
    "required": ["object", "app_id", "mode", "scopes", "name", "expires_at"],
    "properties": {
        "object": {"type": "string", "const": "api_key"},
        "app_id": {"type": "string", "pattern": "^app_[a-z0-9]{16}$"},
        "mode": {"type": "string", "enum": ["test", "prod"]},
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(SCOPE_NAMES)}},
        "name": {"type": "string"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
})


@endpoint("GET", "/key", scope=None, summary="The calling API key", response=KEY_INFO, tag="Key")
def get_key(call: ApiCall):
    """The calling key's App ID, mode, scopes, name and expiry. Needs no scope."""
    key = call.caller.key
    return {
        "object": "api_key",
        "app_id": call.application.app_id,
        "mode": key.mode,
        "scopes": key.scope_list,
        "name": key.name,
        "expires_at": isoformat(key.expires_at),
    }


EXPOSED_REPORTS_PER_MINUTE = 20  # per address: each report may carry up to 100 keys

RECEIVED = schema_ref("ExposedKeysReceived", {
    "type": "object",
    "required": ["received"],
    "properties": {"received": {"type": "integer", "minimum": 0,
                                "description": "How many keys the request held (never how many were revoked)."}},
})


@endpoint(
    "POST", "/keys/revoke-exposed", scope=None, summary="Report exposed API keys", tag="Key",
    authenticated=False, status=202, response=RECEIVED,
    body=Body({
        "keys": Array(String(max_length=200, example="test_sk_…"), max_items=EXPOSED_KEYS_MAX,
                      description=f"Up to {EXPOSED_KEYS_MAX} strings that look like API keys."),
        "source": String(min_length=1, max_length=EXPOSED_SOURCE_MAX,
                         description="Where they were found, e.g. the URL of a public file.",
                         example="https://github.com/example/shop/blob/main/.env"),
    }, required=("keys", "source")),
    errors={400: "invalid_request: keys is not an array of at most 100 strings, or source is missing or "
                 "longer than 500 characters",
            413: "request_too_large: the body is over 64 KiB",
            415: "unsupported_media_type: the body is not application/json",
            429: "rate_limited: too many reports from this address; see Retry-After"},
    description="Anyone who finds a key where it should not be (a public repository, a paste, a log) may "
                "report it here, without authentication. Each well-formed live key among `keys` is revoked "
                "at once and marked exposed with `source`: its partner sees \"Exposed\" on the key, a "
                "banner and an audit entry, and gets an api_key.exposed event. The answer is always 202 with "
                "the number of keys received, whatever they were, so it tells nothing about which keys exist. "
                f"At most {EXPOSED_REPORTS_PER_MINUTE} reports a minute per address.",
)
def revoke_exposed_keys(call: ApiCall):
    """Revoke every live key among the reported ones; answer only how many were received."""
    window = rate_limits.hit(f"exposed:{request.remote_addr or '-'}", EXPOSED_REPORTS_PER_MINUTE)
    if not window.allowed:
        raise ApiError(429, "rate_limited",
                       f"At most {EXPOSED_REPORTS_PER_MINUTE} reports a minute from one address; "
                       f"retry in {window.reset} s.", headers={"Retry-After": str(window.reset)})
    revoke_exposed(call.body["keys"], call.body["source"])
    return {"received": len(call.body["keys"])}, 202
