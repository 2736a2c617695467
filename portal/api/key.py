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


def api_key_json(key, app_id: str) -> dict:
    """An API key's metadata, as webhook events carry it (never the key itself)."""
    return {
        "object": "api_key",
        "id": key.masked,
        "app_id": app_id,
        "mode": key.mode,
        "name": key.name,
        "scopes": key.scope_list,
        "created_at": isoformat(key.created_at),
        "expires_at": isoformat(key.expires_at),
        "revoked_at": isoformat(key.revoked_at),
        "replaces": key.rolled_from.masked if key.rolled_from_id else None,
    }


def app_secret_json(app_id: str, state) -> dict:
    """An App Secret's metadata after a change (`state`: domain.applications.SecretState)."""
    return {
        "object": "app_secret",
        "app_id": app_id,
        "last4": state.current_last4,
        "previous_last4": state.previous_last4,
        "previous_valid_until": isoformat(state.previous_expires_at),
    }
