"""The one error shape of the /v1 API (DESIGN.md §5) and the request id every response carries.

    {"error": {"type", "code", "message", "param"?, "required_scope"?, "request_id"}}

Raise `ApiError(status, code, message, param=...)` anywhere below a view, or let a domain
function's `DomainError` through; the dispatcher (`portal.api.registry`) turns either into
this JSON, in one place. Anything else that escapes a view becomes a 500
`api_error` whose message says nothing about the cause (the cause goes to the log only).
"""

from __future__ import annotations

import json

from flask import Response, g

from portal import logs
from portal.domain import DomainError

# The `type` of an error follows from its status: partners branch on `type`, then `code`.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "invalid_request_error",
    409: "conflict",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}
ERROR_TYPE_NAMES = (
    "authentication_error", "permission_error", "invalid_request_error",
    "not_found", "conflict", "rate_limit_error", "api_error",
)


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def request_id() -> str:
    """This request's id (`req_` + 24 hex digits), made on first use (portal.logs)."""
    return logs.request_id()


class ApiError(Exception):
    """A documented API failure: status, `code`, a message for the partner's developer,
    and optionally the `param` at fault plus extra fields (`required_scope`,
    `canonical_string`). `headers` go onto the response (e.g. Retry-After)."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra
        self.key = None  # the API key, when the gate had resolved it (for the request log)
        self.log_hint = False  # the message ends by pointing at the portal's request log

    @property
    def public_message(self) -> str:
        """The message as the response carries it."""
        if self.log_hint and self.status < 500:
            return f"{self.message} See the request log for {request_id()} in the portal."
        return self.message

    def body(self) -> dict:
        error = {"type": error_type(self.status), "code": self.code, "message": self.public_message}
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        error["request_id"] = request_id()
        return {"error": error}

    def response(self) -> Response:
        g.api_error = self  # for the request log (portal.api records every /v1 request)
        response = json_response(self.body(), self.status)
        response.headers.update(self.headers)
        return response


# Shorthands for the failures every resource module needs.

def invalid_request(message: str, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message, param=param)


def not_found(what: str, param: str | None = "id") -> ApiError:
    """404 for a missing object, another partner's object and the other mode's object alike."""
    return ApiError(404, "resource_missing", f"No such {what}.", param=param)


def conflict(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError(409, code, message, param=param)


def internal_error() -> ApiError:
    return ApiError(500, "internal_error",
                    "Something went wrong on our side. Retry later; quote the request_id if it persists.")


def service_unavailable() -> ApiError:
    """503 while the database does not answer (the driver's message goes to the log only)."""
    return ApiError(503, "service_unavailable",
                    "The service cannot reach its database right now. Please try again in a moment.",
                    headers={"Retry-After": "1", "Cache-Control": "no-store"})


def secrets_unreadable() -> ApiError:
    """503 while the server's encryption keys cannot read an App Secret: the operator's
    mistake to fix (portal.api.gate logs it), not the partner's, and not a 500."""
    return ApiError(503, "service_unavailable",
                    "The service cannot verify signed requests right now. Please try again later.",
                    headers={"Retry-After": "60", "Cache-Control": "no-store"})


# The status of each kind of domain refusal (portal.domain.DomainError.kind).
DOMAIN_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "rate_limited": 429, "unavailable": 502}


def from_domain_error(exc: DomainError) -> ApiError:
    """A domain rule's refusal in the API's error shape: the kind gives the status, the
    field becomes `param`, a rate limit's `retry_after` becomes `Retry-After`."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return ApiError(DOMAIN_STATUS[exc.kind], exc.code, exc.message, param=exc.field, headers=headers)


def json_response(data, status: int = 200) -> Response:
    """A compact JSON response (the API never pretty-prints)."""
    return Response(json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                    status=status, mimetype="application/json")


def from_http_exception(exc) -> ApiError:
    """Werkzeug's 404/405/413/… as the API's error shape (never its HTML page)."""
    status = getattr(exc, "code", None) or 500
    if status == 404:
        return ApiError(404, "not_found", "No such endpoint. See GET /v1/openapi.json for the API's endpoints.")
    if status == 405:
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
        err = ApiError(405, "method_not_allowed",
                       f"This endpoint does not accept this method. Allowed: {allowed}.")
        if allowed:
            err.headers["Allow"] = allowed
        return err
    if status == 413:
        return ApiError(413, "request_too_large", "The request body is larger than 64 KiB.")
    if status == 415:
        return ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    if status >= 500:
        return internal_error()
    return ApiError(status, "invalid_request", "The request could not be understood.")
