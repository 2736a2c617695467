"""Scopes, the endpoint each SDK method calls with the scope it needs, and the check made
before sending.

``ENDPOINTS`` is the one table the client checks before sending; the SDK's tests compare
it with the server's OpenAPI document (``x-required-scope`` per operation) so the two
cannot drift apart. ``KeyScopes`` holds the calling key's scopes (``GET /v1/key``, read
once) and refuses an operation whose scope the key lacks, without sending it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple

from loyalty_sdk.errors import InsufficientScopeError
from loyalty_sdk.objects import KeyInfo

if TYPE_CHECKING:
    from loyalty_sdk._requestor import Requestor

SCOPES: tuple[str, ...] = (
    "member_read",
    "member_write",
    "card_read",
    "claim_write",
    "referral_read",
    "referral_write",
    "stamps_read",
    "stamps_write",
    "cashback_read",
    "cashback_write",
)


class Endpoint(NamedTuple):
    """One API operation: HTTP method, path template and the scope it needs (None: no scope)."""

    method: str
    path: str
    scope: str | None


ENDPOINTS: dict[str, Endpoint] = {
    "key_info": Endpoint("GET", "/v1/key", None),
    "members.create": Endpoint("POST", "/v1/members", "member_write"),
    "members.list": Endpoint("GET", "/v1/members", "member_read"),
    "members.get": Endpoint("GET", "/v1/members/{member_id}", "member_read"),
    "members.update": Endpoint("PATCH", "/v1/members/{member_id}", "member_write"),
    "members.validate": Endpoint("GET", "/v1/members/validate", "member_read"),
    "members.request_otp": Endpoint("POST", "/v1/members/{member_id}/otp", "member_write"),
    "members.verify_otp": Endpoint("POST", "/v1/members/{member_id}/otp/verify", "member_write"),
    "cards.list": Endpoint("GET", "/v1/cards", "card_read"),
    "cards.get": Endpoint("GET", "/v1/cards/{card_id}", "card_read"),
    "stamps.balance": Endpoint("GET", "/v1/members/{member_id}/stamps", "stamps_read"),
    "stamps.history": Endpoint("GET", "/v1/members/{member_id}/stamps/history", "stamps_read"),
    "stamps.add": Endpoint("POST", "/v1/members/{member_id}/stamps", "stamps_write"),
    "stamps.redeem": Endpoint("POST", "/v1/members/{member_id}/stamps/redeem", "stamps_write"),
    "cashback.balance": Endpoint("GET", "/v1/members/{member_id}/cashback", "cashback_read"),
    "cashback.history": Endpoint("GET", "/v1/members/{member_id}/cashback/history", "cashback_read"),
    "cashback.credit": Endpoint("POST", "/v1/members/{member_id}/cashback/credit", "cashback_write"),
    "cashback.redeem": Endpoint("POST", "/v1/members/{member_id}/cashback/redeem", "cashback_write"),
    "claims.create": Endpoint("POST", "/v1/claims", "claim_write"),
    "claims.list": Endpoint("GET", "/v1/claims", "claim_write"),
    "claims.get": Endpoint("GET", "/v1/claims/{claim_id}", "claim_write"),
    "claims.approve": Endpoint("POST", "/v1/claims/{claim_id}/approve", "claim_write"),
    "claims.reject": Endpoint("POST", "/v1/claims/{claim_id}/reject", "claim_write"),
    "referrals.stats": Endpoint("GET", "/v1/members/{member_id}/referrals", "referral_read"),
    "referrals.validate": Endpoint("GET", "/v1/referrals/validate", "referral_read"),
    "referrals.apply": Endpoint("POST", "/v1/referrals/apply", "referral_write"),
}


def check_scope_names(scopes: tuple[str, ...] | list[str]) -> None:
    """Raise ``ValueError`` naming any scope that does not exist (a typo should not read as 'missing')."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(map(repr, unknown))}; the scopes are {', '.join(SCOPES)}")


class KeyScopes:
    """The calling key's scopes, fetched once with ``GET /v1/key`` and cached (thread-safe).

    ``mode`` and ``masked_key`` only go into error messages, so a refusal names the key
    without showing it.
    """

    def __init__(self, requestor: "Requestor", *, mode: str, masked_key: str) -> None:
        self._requestor = requestor
        self._mode = mode
        self._masked_key = masked_key
        self._key_info: KeyInfo | None = None
        self._lock = threading.Lock()

    def key_info(self, *, refresh: bool = False) -> KeyInfo:
        """The key's ``KeyInfo``, from the cache unless ``refresh`` (or not yet fetched)."""
        if self._key_info is None or refresh:
            with self._lock:
                if self._key_info is None or refresh:
                    self._key_info = KeyInfo(self._requestor.request("GET", ENDPOINTS["key_info"].path))
        return self._key_info

    def has(self, scope: str) -> bool:
        """Whether the key carries ``scope`` (an unknown scope name raises ValueError)."""
        check_scope_names([scope])
        return scope in (self.key_info().scopes or ())

    def require(self, *scopes: str) -> None:
        """Raise ``InsufficientScopeError`` (``.missing`` lists them) unless the key has every one of ``scopes``."""
        check_scope_names(list(scopes))
        held = set(self.key_info().scopes or ())
        missing = [s for s in scopes if s not in held]
        if missing:
            raise InsufficientScopeError(
                f"this {self._mode} key ({self._masked_key}) lacks the scope"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                "create or roll a key with them in the portal",
                missing=missing,
            )

    def check(self, operation: str) -> Endpoint:
        """``ENDPOINTS[operation]``, once the key is known to carry its scope; otherwise
        ``InsufficientScopeError`` naming the operation, and nothing is sent."""
        endpoint = ENDPOINTS[operation]
        if endpoint.scope is not None:
            scopes = self.key_info().scopes or ()
            if endpoint.scope not in scopes:
                raise InsufficientScopeError(
                    f"{operation}() calls {endpoint.method} {endpoint.path}, which needs the scope {endpoint.scope}; "
                    f"this {self._mode} key ({self._masked_key}) has {', '.join(scopes) or 'none'}. "
                    "Not sent. Create or roll a key with that scope in the portal.",
                    missing=[endpoint.scope],
                )
        return endpoint
