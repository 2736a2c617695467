"""GET /v1/openapi.json: the OpenAPI 3.1 document, generated from the endpoint registry.

Every operation carries `x-required-scope` (null when any valid key may call it), its
request schemas, its success response and the error responses the gate and the request
parser can produce, so the document cannot drift from what the code declares.
"""

from __future__ import annotations

import re

from flask import current_app

from portal import __version__
from portal.api.errors import ERROR_TYPE_NAMES, json_response
from portal.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from portal.api.idempotency import REPLAYED_HEADER
from portal.api.registry import REGISTRY, SCHEMAS, ApiCall, Endpoint, endpoint
from portal.scopes import SCOPES

SECURITY_SCHEME = "SignedApiKey"
# The order a partner meets the resources in; tags not listed follow alphabetically.
TAG_ORDER = ["Key", "Members", "Cards", "Stamps", "Cashback", "Claims", "Referrals", "Meta"]

SIGNING_DESCRIPTION = """\
Every call (except this document) carries five headers:

    Authorization: Bearer <api key>             test_sk_… or prod_sk_…
    X-Loyalty-App-Id: <app id>                  app_…
    X-Loyalty-Timestamp: <unix seconds>         within ±300 s of the server's clock
    X-Loyalty-Nonce: <16-64 of [A-Za-z0-9_-]>   new for every request, also every retry
    X-Loyalty-Signature: v1=<hex HMAC-SHA256(app secret, canonical string)>

The canonical string is eight lines joined by "\\n" (no trailing newline):

    LOYALTY-HMAC-SHA256-V1
    <METHOD>
    <canonical path>     percent-decoded once, then UTF-8 percent-encoded except A-Z a-z 0-9 - . _ ~ /
    <canonical query>    pairs decoded (+ and %20 are spaces), encoded like the path but "/" too,
                         sorted by name then value, joined name=value with &; empty line if none
    <app id>
    <timestamp>
    <nonce>
    <lowercase hex SHA-256 of the raw body bytes (of b"" when there is none)>

Failures, checked in this order: 401 missing_api_key, malformed_api_key, invalid_api_key,
revoked_api_key, expired_api_key, missing_app_id, app_mismatch, missing_signature,
timestamp_out_of_range, invalid_signature (the error then carries `canonical_string`, the
string the server signed), replayed_request; 403 account_disabled; 403 ip_not_allowed (the
key has Allowed IPs and the call came from elsewhere; the message names the address seen);
403 insufficient_scope (with `required_scope`); 429 rate_limited (over the key's requests
per minute, with Retry-After). Every answer to a known key carries RateLimit-Limit,
RateLimit-Remaining and RateLimit-Reset (seconds until the minute's window ends). Keys
only see data of their own mode (test or prod).
"""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "request_id"],
            "properties": {
                "type": {"type": "string", "enum": list(ERROR_TYPE_NAMES)},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": "string", "description": "The field, query parameter or header at fault."},
                "required_scope": {"type": "string", "enum": list(SCOPES),
                                   "description": "With insufficient_scope: the scope the endpoint needs."},
                "canonical_string": {"type": "string",
                                     "description": "With invalid_signature: the string the server signed."},
                "request_id": {"type": "string", "pattern": "^req_"},
            },
        }
    },
}

STANDARD_ERRORS = {
    "400": "invalid_request: a malformed query, body or header; `param` names it",
    "401": "Authentication failed (see the security scheme for each code)",
    "403": "account_disabled, ip_not_allowed (the key's Allowed IPs do not include the caller's address), "
           "or insufficient_scope with `required_scope`",
    "404": "No such object for this key's partner and mode",
    "409": "A conflict (for POST: idempotency_key_reused, idempotency_request_in_progress)",
    "413": "request_too_large: the body is over 64 KiB",
    "415": "unsupported_media_type: the body is not application/json",
    "429": "rate_limited: over the key's requests per minute; wait the Retry-After seconds",
}

RATE_LIMIT_HEADERS = {name: {"$ref": f"#/components/headers/{name.replace('-', '')}"}
                      for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")}

_RULE_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


def openapi_path(rule: str) -> str:
    """Flask's `/members/<member_id>` → OpenAPI's `/members/{member_id}`."""
    return _RULE_PARAM.sub(r"{\1}", rule)


def _error_response(description: str) -> dict:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(ep: Endpoint) -> dict:
    operation = {
        "operationId": ep.name.split(".", 1)[1],
        "summary": ep.summary,
        "tags": [ep.tag],
        "x-required-scope": ep.scope,
    }
    if ep.description:
        operation["description"] = ep.description
    if ep.scope:
        operation["description"] = (operation.get("description", "") + f"\n\nRequires the `{ep.scope}` scope.").strip()
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
        for name in _RULE_PARAM.findall(ep.rule)
    ]
    if ep.query:
        params += ep.query.parameters()
    if ep.method == "POST" and ep.authenticated:
        params.append({
            "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
            "description": "Makes a retry safe: the same key with the same request within 24 h returns the "
                           "first response again (with Idempotent-Replayed: true).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
        })
    if params:
        operation["parameters"] = params
    if ep.body is not None:
        operation["requestBody"] = {
            "required": bool(ep.body.required or ep.body.one_of_required),
            "content": {"application/json": {"schema": ep.body.schema()}},
        }
    success = {
        "description": ep.summary,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": ep.response or {"type": "object"}}},
    }
    if ep.authenticated:
        success["headers"].update(RATE_LIMIT_HEADERS)
    if ep.method == "POST" and ep.authenticated:
        success["headers"][REPLAYED_HEADER] = {"$ref": "#/components/headers/IdempotentReplayed"}
    responses = {str(ep.status): success}
    if ep.authenticated:
        codes = ["400", "401", "403", "429"]
        if _RULE_PARAM.search(ep.rule):
            codes.append("404")
        if ep.method == "POST":
            codes.append("409")
        if ep.method in ("POST", "PATCH", "PUT"):
            codes += ["413", "415"]
        for code in codes:
            responses[code] = _error_response(STANDARD_ERRORS[code])
        responses["429"]["headers"].update(RATE_LIMIT_HEADERS)
        responses["429"]["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    for status, description in ep.errors.items():
        key = str(status)
        if key in responses and key in STANDARD_ERRORS:
            description = f"{description}; or: {STANDARD_ERRORS[key]}"
        responses[key] = _error_response(description)
    operation["responses"] = responses
    if not ep.authenticated:
        operation["security"] = []
    return operation


def build_document(server_url: str = "/") -> dict:
    """The whole OpenAPI 3.1 document from the registry."""
    paths: dict[str, dict] = {}
    for ep in REGISTRY.values():
        paths.setdefault(openapi_path(ep.path), {})[ep.method.lower()] = _operation(ep)
    tags = sorted({ep.tag for ep in REGISTRY.values()},
                  key=lambda t: (TAG_ORDER.index(t) if t in TAG_ORDER else len(TAG_ORDER), t))
    scope_lines = "\n".join(f"- `{s.name}` ({s.type}): {s.description}" for s in SCOPES.values())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty Partner API",
            "version": __version__,
            "description": (
                "Members, OTPs, cards and rewards, claims, referrals, stamps and cashback for "
                "the loyalty program's partners. JSON in and out; every request is signed "
                "(see the security scheme). Errors share one shape; every response has an "
                "X-Request-Id header. Lists take `limit` (1-100, default 20) and "
                "`starting_after`, newest first.\n\nScopes:\n" + scope_lines
            ),
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": tag} for tag in tags],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http", "scheme": "bearer", "bearerFormat": "API key",
                    "description": SIGNING_DESCRIPTION,
                }
            },
            "headers": {
                "RequestId": {"description": "This request's id (req_…); quote it when asking for help.",
                              "schema": {"type": "string", "pattern": "^req_"}},
                "RateLimitLimit": {"description": "The key's requests per minute.",
                                   "schema": {"type": "integer", "minimum": 1}},
                "RateLimitRemaining": {"description": "Requests the key may still make in this minute's window.",
                                       "schema": {"type": "integer", "minimum": 0}},
                "RateLimitReset": {"description": "Seconds until this minute's window ends.",
                                   "schema": {"type": "integer", "minimum": 1, "maximum": 60}},
                "RetryAfter": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}},
                "IdempotentReplayed": {"description": "`true` when this is a stored response replayed "
                                                      "for a repeated Idempotency-Key.",
                                       "schema": {"type": "string", "enum": ["true"]}},
            },
            "schemas": {"Error": ERROR_SCHEMA, **SCHEMAS},
        },
    }


def document() -> dict:
    """The document, built once per app (the registry does not change at run time)."""
    cached = current_app.extensions.get("loyalty_openapi")
    if cached is None:
        cached = current_app.extensions["loyalty_openapi"] = build_document()
    return cached


@endpoint("GET", "/openapi.json", scope=None, summary="This OpenAPI document", tag="Meta",
          authenticated=False, response={"type": "object"})
def openapi_document(call: ApiCall):
    """The OpenAPI 3.1 document of the API (no key needed)."""
    response = json_response(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
