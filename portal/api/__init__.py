"""The /v1 loyalty API: one blueprint, one gate, one registry of endpoints.

The package: `gate` (the one gate, DESIGN.md §4), `registry` (`@endpoint` and the
dispatcher), `errors` (the one error shape), `schema` (request validation), `idempotency`,
`pagination`, `openapi`, and one module per resource (`members`, `cards`, `stamps`,
`cashback`, `claims`, `referrals`, `key`), each with its response schemas and the
`*_json` functions that turn models into those shapes, side by side.

How to add an endpoint
======================

Put it in a module of this package (`portal/api/<resource>.py`); every module here is
imported when the package loads, so nothing else needs registering. Declare it with
`@endpoint`, which puts the route, its scope, its request schemas and its response schema
in one place. The registry (`REGISTRY`) drives the gate, the OpenAPI document
(`GET /v1/openapi.json`), the docs page (`/docs/api`) and the tests; a `/v1` route added
any other way fails the suite (tests/api/test_registry.py walks the URL map), and is
refused at run time.

    from portal.api.registry import ApiCall, endpoint, schema_ref
    from portal.api.errors import invalid_request, not_found
    from portal.api.pagination import list_of, list_query, page
    from portal.api.schema import Body, Enum, Integer, String

    STAMPS_ENTRY = schema_ref("LedgerEntry", {"type": "object", "properties": {...}, "required": [...]})

    @endpoint(
        "POST", "/members/<member_id>/stamps",   # Flask rule syntax, below /v1
        scope="stamps_write",                     # required keyword; None = any valid key
        summary="Add stamps",
        body=Body({"card_id": String(min_length=1, max_length=64),
                   "count": Integer(minimum=1, maximum=1000),
                   "reference": String(max_length=128)},
                  required=("card_id", "count")),
        response=STAMPS_ENTRY, status=201,        # the success status and its JSON Schema
        errors={404: "No such member or card", 409: "insufficient_stamps"},  # documented extras
    )
    def add_stamps(call: ApiCall, member_id):
        \"\"\"Add stamps to a member's card.\"\"\"
        member = member_or_404(call, member_id)          # from portal.api.members: scoped, else 404
        entry = ledger.add_stamps(member, card, call.body["count"], ...)  # may raise a DomainError
        return entry_json(entry, member.public_id), 201

What the view gets and returns
------------------------------
- `call` (`ApiCall`): `call.caller` (key, application, partner_id, mode, scopes),
  shortcuts `call.partner_id` and `call.mode` (scope EVERY query by both: another
  partner's or the other mode's object is a 404, never a 403), `call.body` (the validated
  body: only the fields sent, so `"x" in call.body` tells "absent" from "null"),
  `call.query` (the validated query string), `call.request_id`.
- Path parameters arrive as keyword arguments (strings; look them up scoped, 404 if absent).
- Return a JSON-able dict (sent with the declared `status`), a `(dict, status)` tuple, or a
  `flask.Response`.

Everything else is done for you, in this order, before the view runs:
0. the path and the query decoded once, as UTF-8 (`portal.signing`): escapes that are not
   UTF-8, or a NUL in the path, are 400 `invalid_request` (`param`: the query parameter,
   or `path`) before the gate; the signature covers, and `call.query` holds, these pairs;
1. the gate (`portal.api.gate.verify_request`, DESIGN.md §4 checks 1-6, allowed IPs
   included), then the scope (check 7, 403 `insufficient_scope` naming `required_scope`),
   then the key's rate limit (check 8, 429 `rate_limited`; every answer to a known key
   carries RateLimit-Limit/-Remaining/-Reset);
2. the query string against `query=` (unknown/repeated params refused);
3. the body against `body=` (415 non-JSON, 413 past 64 KiB however it is framed, 400
   `invalid_request` with `param` for unknown, mistyped or missing fields, and for text no
   database stores: NUL or an unpaired surrogate, in any string or field name). An
   endpoint without `body=` accepts only an empty body or `{}`;
4. for every POST, `Idempotency-Key` (`portal.api.idempotency`): replay with
   `Idempotent-Replayed: true`, 409 `idempotency_key_reused` / `idempotency_request_in_progress`,
   scoped to (application, mode), 24 h. With a key, the view runs inside one write
   transaction together with storing its response, so domain functions must use
   `write_transaction()`/`atomic()` (which nest as savepoints), never commit on their own.
   A view that waits on the outside world (mail, SMS) declares `transactional=False`: it
   then never runs inside a transaction, commits its own writes before it waits, and
   undoes them itself if the outside call fails (see `portal.domain.otp.request_otp`). A 429 or
   5xx response is not stored (its writes roll back), so a retry with the key runs again;
5. the response gets `X-Request-Id`, and one log line is written per request (request id,
   masked key, status, milliseconds; never a key, secret or body), and one request-log
   record is buffered (`portal.domain.request_log`: the fields of DESIGN.md §11, written by
   a background thread within half a second; the gate's refusals after the key resolved
   end their message with "See the request log for req_… in the portal."). Loggers come from
   `portal.logs.get_logger`, which escapes control characters in what a request put into
   a line, so a request can never write a second line.

Errors: a domain function's `DomainError` needs no try/except: the dispatcher answers it
(its kind gives the status: invalid 400, not_found 404, conflict 409, rate_limited 429,
unavailable 502; its `code` and `field` become `code` and `param`). A view's own checks
raise `ApiError(status, code, message, param=...)` or the shorthands in
`portal.api.errors` (`invalid_request`, `not_found`, `conflict`). Any other exception is a
500 `api_error` whose message reveals nothing; the log gets the exception's type and
place, no traceback. Domain rules (transactions, ledgers) live in `portal.domain`
(`portal/domain/members.py`, `portal/domain/ledger.py`, …); views stay thin.

Lists: `query=list_query({...filters})`, `response=list_of(ITEM_SCHEMA)`, and
`return page(select_scoped_to_caller, Model, call.query, serialize=item_json)` — see
`portal.api.pagination`.

Tests: `tests/api/helpers.py` signs requests for the Flask test client and for `requests`
against `live_server`; tests/api/test_scopes.py checks, for every operation of the OpenAPI
document, that a key without the scope gets 403 `insufficient_scope`.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import time

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from portal import metrics
from portal.api.errors import ApiError, from_http_exception, internal_error, invalid_request, request_id
from portal.api.idempotency import REPLAYED_HEADER
from portal.api.openapi import openapi_path
from portal.api.registry import API_PREFIX, REGISTRY, SCHEMAS, ApiCall, Endpoint, bp, endpoint, schema_ref
from portal.domain import request_log
from portal.logs import REQUEST_ID_HEADER, console_handler, get_logger, where_raised
from portal.models import utcnow
from portal.signing import NotUtf8, decode_wsgi_path

log = get_logger("portal.api")

__all__ = ["API_PREFIX", "REGISTRY", "SCHEMAS", "ApiCall", "Endpoint", "bp", "endpoint", "init_app", "schema_ref"]


def init_app(app) -> None:
    """Mount the /v1 blueprint on the API's own app (`portal.app.create_api_app`): its
    hooks below run for every request that app serves, all of them /v1."""
    app.register_blueprint(bp)


# -- hooks for the API app: routing errors, request ids, the log line ---------------------


@bp.before_app_request
def _start_request():
    """Time the request; answer routing failures (404/405) in the API's error shape.

    Routing errors are raised after before-request hooks, so answering here keeps
    Flask's HTML error pages out of /v1 without touching the app's error handlers.
    """
    g.api_started = time.perf_counter()
    req = request._get_current_object()  # one proxy lookup, not one per attribute
    refusal = _undecodable_path(req.environ)
    if refusal is not None:
        return refusal.response()
    exc = req.routing_exception
    if exc is not None:
        if isinstance(exc, HTTPException) and exc.code in (404, 405):
            return from_http_exception(exc).response()
        return None
    if req.endpoint not in REGISTRY:
        # Fail closed: a /v1 route that did not come through @endpoint is never served.
        return from_http_exception(_NOT_FOUND).response()
    return None


def _undecodable_path(environ) -> ApiError | None:
    """A path whose escapes are not UTF-8 has no canonical form (two such paths would share
    one signature), and a NUL in it cannot reach a database: 400 before anything else."""
    try:
        path = decode_wsgi_path(environ.get("PATH_INFO", ""))
    except NotUtf8 as exc:
        return invalid_request(str(exc), "path")
    if "\x00" in path:
        return invalid_request("The path must not contain NUL characters (%00).", "path")
    return None


@bp.app_errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    """What escapes the dispatcher (a hook's own failure) in the API's shape: an HTTP
    error as its status, anything else a 500 that says nothing of the cause."""
    if isinstance(exc, HTTPException):
        return from_http_exception(exc).response()
    log.error("api %s unhandled %s", request_id(), where_raised(exc))
    return internal_error().response()


class _NotFound(HTTPException):
    code = 404


_NOT_FOUND = _NotFound()


@bp.after_app_request
def _finish_request(response: Response) -> Response:
    """`X-Request-Id` on every response; one log line and one request-log record per
    request, both from the same values."""
    rid = request_id()
    headers = response.headers
    headers.setdefault(REQUEST_ID_HEADER, rid)  # (the security headers: portal.headers)
    req, state = request._get_current_object(), g._get_current_object()  # one proxy lookup each
    elapsed_ms = (time.perf_counter() - state.get("api_started", time.perf_counter())) * 1000
    caller, error = state.get("api_caller"), state.get("api_error")
    # The key the request is filed under: the caller's, or (a refusal after it resolved) the error's.
    key = caller.key if caller is not None else getattr(error, "key", None)
    rule = req.url_rule.rule if req.url_rule is not None else None
    route = _route_pattern(rule)
    method, path, status = req.method, req.path, response.status_code
    environ = req.environ
    idempotency_key, user_agent = environ.get("HTTP_IDEMPOTENCY_KEY"), environ.get("HTTP_USER_AGENT")
    replayed = headers.get(REPLAYED_HEADER) == "true"
    masked = key.masked if key is not None else _masked_header_key(environ)
    # The error's code and message: the refusal's own, or read back from a stored answer (a replay).
    code, message = (error.code, error.message) if error is not None else \
        _stored_error(response) if status >= 400 else (None, None)
    client = req.remote_addr or "-"

    def fields() -> dict:  # what LOYALTY_LOG_FORMAT=json adds to the line (portal.logs)
        return {"method": method, "path": path, "route": route, "status": status,
                "duration_ms": round(elapsed_ms, 1), "key": masked,
                "app_id": key.application.app_id if key is not None else None,
                "mode": key.mode if key is not None else None,
                "error_code": code, "client": client,
                "idempotency_key": idempotency_key, "replayed": replayed, "user_agent": user_agent}

    log.info("api %s %s %s %s %.1fms key=%s client=%s", rid, method, path, status, elapsed_ms, masked, client,
             extra={"fields": fields})
    _record(rid, environ, key, error, code, message, method, path, status, elapsed_ms, route, req.remote_addr,
            idempotency_key, user_agent, replayed)
    metrics.observe_api_request(rule or "unmatched", method, status, (code or "")[:64], elapsed_ms / 1000)
    return response


def _record(rid: str, environ: dict, key, error, code: str | None, message: str | None, method: str, path: str,
            status: int, elapsed_ms: float, route: str | None, client_ip: str | None, idempotency_key: str | None,
            user_agent: str | None, replayed: bool) -> None:
    """Hand the request's §11 fields to the request log (buffered; written by its flusher).

    Never a body, a key, a secret, a signature or an OTP code: only what is named here.
    The error's own message is kept, without the "see the request log" pointer.
    """
    canonical = error.extra.get("canonical_string") if code == "invalid_signature" and error is not None else None
    if key is not None:
        application = key.application
        partner_id, application_id, api_key_id, mode = application.partner_id, application.id, key.id, key.mode
        key_masked = key.masked
    else:
        partner_id = application_id = api_key_id = key_masked = None
        mode = _presented_mode(environ.get("HTTP_AUTHORIZATION", ""))
    request_log.record(
        utcnow(), rid, partner_id=partner_id, application_id=application_id, api_key_id=api_key_id,
        key_masked=key_masked, mode=mode, method=method, route=route,
        path=path, status=status, error_code=code, error_message=message,
        latency_ms=round(elapsed_ms, 2), client_ip=client_ip or "",
        idempotency_key=idempotency_key, replayed=replayed, user_agent=user_agent, canonical_string=canonical,
        app_id=None if key is not None else (environ.get("HTTP_X_LOYALTY_APP_ID") or "").strip()[:40] or None,
    )


_ROUTE_PATTERNS: dict[str, str] = {}


def _route_pattern(rule: str | None) -> str | None:
    """`/v1/members/<member_id>` as the request log shows it: `/v1/members/{member_id}`."""
    if rule is None:
        return None
    pattern = _ROUTE_PATTERNS.get(rule)
    if pattern is None:
        pattern = _ROUTE_PATTERNS[rule] = openapi_path(rule)
    return pattern


def _presented_mode(authorization: str) -> str | None:
    token = authorization.partition(" ")[2].strip()
    if token.startswith("test_sk_"):
        return "test"
    if token.startswith("prod_sk_"):
        return "prod"
    return None


def _stored_error(response: Response) -> tuple[str | None, str | None]:
    """The code and message of an error response made elsewhere (a replayed one)."""
    try:
        error = json.loads(response.get_data())["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, RuntimeError):
        return None, None


def _masked_header_key(environ) -> str:
    """The presented key, masked like the portal shows it, or `-`; never the key itself."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    token = auth.partition(" ")[2].strip()
    if token.startswith(("test_sk_", "prod_sk_")) and len(token) >= 20:
        return f"{token[:8]}{token[8:12]}…{token[-4:]}"
    return "-"


@bp.record_once
def _configure_logging(state):
    """Under gunicorn nothing configures our loggers: give the API and OTP console output
    a handler of their own (unless the host already routes them, as pytest does)."""
    for name in ("portal.api", "portal.domain.otp"):
        logger = get_logger(name)
        logger.setLevel(logging.INFO)
        if not logger.hasHandlers():
            logger.addHandler(console_handler())


# Import every resource module so their @endpoint declarations register their routes.
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
