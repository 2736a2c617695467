"""Scopes and the endpoint each SDK method calls, with the scope it needs.

``ENDPOINTS`` is the one table the client checks before sending; the SDK's tests compare
it with the server's OpenAPI document (``x-required-scope`` per operation) so the two
cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

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
