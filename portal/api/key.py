"""GET /v1/key: what the calling key is allowed to do (the SDK caches this)."""

from __future__ import annotations

from portal.api.registry import ApiCall, endpoint, schema_ref
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
