"""The SDK's exceptions: one class per kind of failure, each naming the request id.

::

    LoyaltyError
    ├── ConfigurationError (also a ValueError): bad credentials or base URL, caught at construction
    ├── APIConnectionError: the server could not be reached (after retries)
    ├── APIError: a 5xx, or an answer that is not the API's JSON (e.g. a proxy's error page)
    ├── AuthenticationError: 401
    ├── PermissionDeniedError: 403
    │   ├── InsufficientScopeError: the key lacks a scope (found locally or by the server)
    │   └── IPNotAllowedError: the key's Allowed IPs do not include this machine (ip_not_allowed)
    ├── InvalidRequestError: 400, 413, 415
    ├── NotFoundError: 404
    ├── ConflictError: 409
    └── RateLimitError: 429 (rate_limited: over the key's requests per minute)
        └── OtpRateLimitError: too many one-time codes (otp_rate_limited, otp_cooldown)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


class LoyaltyError(Exception):
    """Base of every SDK error: ``status``, ``code``, ``message`` and ``request_id`` (None when not from the server).

    ``str()`` reads ``[status code] message (param: …) (request req_…)``: the request id is
    what to paste into the portal's request log (or quote to support) to find the call.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        type: str | None = None,
        param: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.type = type
        self.param = param
        self.body = dict(body) if body is not None else None
        self.headers = dict(headers) if headers is not None else {}

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        text = f"[{head}] {self.message}" if head else self.message
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id and self.request_id not in self.message:
            text += f" (request {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class ConfigurationError(LoyaltyError, ValueError):
    """A missing or malformed credential or base URL, raised when the client is built."""


class APIConnectionError(LoyaltyError):
    """The server could not be reached or did not answer in time, on every attempt."""


class APIError(LoyaltyError):
    """A server error (5xx), or a response that is not the API's JSON (e.g. from a proxy)."""


class AuthenticationError(LoyaltyError):
    """401: the key, the App ID, the timestamp or the signature was refused.

    For ``invalid_signature``, ``server_canonical_string`` is what the server signed and
    ``sdk_canonical_string`` what this SDK signed; ``str()`` shows both, line by line.
    """

    def __init__(self, message: str, *, server_canonical_string: str | None = None,
                 sdk_canonical_string: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.server_canonical_string = server_canonical_string
        self.sdk_canonical_string = sdk_canonical_string

    def __str__(self) -> str:
        text = super().__str__()
        if self.server_canonical_string is None and self.sdk_canonical_string is None:
            return text
        server = (self.server_canonical_string or "").split("\n")
        sdk = (self.sdk_canonical_string or "").split("\n")
        lines = [text, "canonical strings, line by line (server | SDK):"]
        for number in range(max(len(server), len(sdk))):
            left = server[number] if number < len(server) else "<missing>"
            right = sdk[number] if number < len(sdk) else "<missing>"
            mark = "  " if left == right else "≠ "
            lines.append(f"{mark}{number + 1}: {left!r} | {right!r}")
        if server == sdk:
            lines.append("the strings match: the App Secret used to sign is not this application's")
        return "\n".join(lines)


class PermissionDeniedError(LoyaltyError):
    """403: the account is disabled, or the key lacks a scope."""


class InsufficientScopeError(PermissionDeniedError):
    """The key lacks scopes the call needs; ``missing`` lists them.

    Raised before sending when the SDK knows the key's scopes (``status`` is None then),
    or from the server's 403 ``insufficient_scope``.
    """

    def __init__(self, message: str, *, missing: Iterable[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("code", "insufficient_scope")
        super().__init__(message, **kwargs)
        self.missing = list(missing)


class IPNotAllowedError(PermissionDeniedError):
    """403 ``ip_not_allowed``: the key has Allowed IPs and this call came from elsewhere (the
    message names the address the server saw). Add it to the key's Allowed IPs in the portal."""


class InvalidRequestError(LoyaltyError):
    """400/413/415: the request's parameters or body were refused; ``param`` names the field."""


class NotFoundError(LoyaltyError):
    """404: no such object for this application and mode."""


class ConflictError(LoyaltyError):
    """409: the object's state forbids the change (e.g. ``insufficient_stamps``, ``claim_not_pending``)."""


class RateLimitError(LoyaltyError):
    """429: too many requests (or OTPs); ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class OtpRateLimitError(RateLimitError):
    """429 ``otp_rate_limited`` or ``otp_cooldown``: too many one-time codes for this member,
    application or destination; ``retry_after`` says when one may be sent again."""


_BY_CODE: dict[str, type[LoyaltyError]] = {
    "insufficient_scope": InsufficientScopeError,
    "ip_not_allowed": IPNotAllowedError,
    "rate_limited": RateLimitError,
    "otp_rate_limited": OtpRateLimitError,
    "otp_cooldown": OtpRateLimitError,
}

_BY_TYPE: dict[str, type[LoyaltyError]] = {
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "invalid_request_error": InvalidRequestError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "rate_limit_error": RateLimitError,
    "api_error": APIError,
}

_BY_STATUS: dict[int, type[LoyaltyError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def error_class(status: int, error_type: str | None, code: str | None) -> type[LoyaltyError]:
    """The exception class for an API error answer: by ``code``, then ``type``, then status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    return _BY_STATUS.get(status, APIError)
