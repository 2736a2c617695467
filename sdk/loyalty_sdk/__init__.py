"""The Loyalty Partner Platform SDK: signed calls, local scope checks, typed results.

::

    from loyalty_sdk import LoyaltyClient
    with LoyaltyClient.from_env() as client:
        print(client.key_info().scopes)

Signing also works alone with any HTTP client: ``canonical_string``, ``sign``,
``LoyaltyAuth`` (a ``requests`` auth object) and ``check_api_key``. Webhook receivers
verify deliveries with ``loyalty_sdk.webhooks.verify``.
"""

from loyalty_sdk import webhooks  # noqa: E402,F401  (loyalty_sdk.webhooks.verify for receivers)
from loyalty_sdk._requestor import ListIterator
from loyalty_sdk._version import __version__
from loyalty_sdk.client import LoyaltyClient
from loyalty_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InsufficientScopeError,
    InvalidRequestError,
    IPNotAllowedError,
    LoyaltyError,
    NotFoundError,
    OtpRateLimitError,
    PermissionDeniedError,
    RateLimitError,
)
from loyalty_sdk.objects import (
    AppliedReferral,
    Card,
    CashbackBalance,
    Claim,
    KeyInfo,
    LedgerEntry,
    LoyaltyObject,
    Member,
    MemberValidation,
    OtpRequest,
    OtpVerification,
    Redemption,
    Referral,
    ReferralStats,
    ReferralValidation,
    Reward,
    StampBalance,
    StampBalances,
)
from loyalty_sdk.scopes import ENDPOINTS, SCOPES
from loyalty_sdk.signing import LoyaltyAuth, canonical_string, check_api_key, sign

__all__ = [
    "__version__",
    "LoyaltyClient", "ListIterator", "LoyaltyAuth", "canonical_string", "sign", "check_api_key",
    "SCOPES", "ENDPOINTS",
    "LoyaltyError", "ConfigurationError", "APIConnectionError", "APIError", "AuthenticationError",
    "PermissionDeniedError", "InsufficientScopeError", "InvalidRequestError", "NotFoundError",
    "ConflictError", "RateLimitError", "IPNotAllowedError", "OtpRateLimitError",
    "LoyaltyObject", "KeyInfo", "Member", "MemberValidation", "OtpRequest", "OtpVerification", "Card",
    "Reward", "StampBalance", "StampBalances", "LedgerEntry", "Redemption", "CashbackBalance", "Claim",
    "Referral", "AppliedReferral", "ReferralStats", "ReferralValidation",
]
