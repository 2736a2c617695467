"""The /v1 loyalty API: one blueprint, one gate, one registry of endpoints.

How to add an endpoint
======================

Put it in a module of this package (`portal/api/<resource>.py`); every module here is
imported when the package loads, so nothing else needs registering. Declare it with
`@endpoint`, which puts the route, its scope, its request schemas and its response schema
in one place. The registry (`REGISTRY`) drives the gate, the OpenAPI document
(`GET /v1/openapi.json`), the docs page (`/docs/api`) and the tests; a `/v1` route added
any other way fails the suite (tests/api/test_registry.py walks the URL map), and is
refused at run time.

    from portal.api import ApiCall, endpoint, schema_ref
    from portal.api.errors import ApiError, conflict, invalid_request, not_found
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
        entry = ledger.add_stamps(member, call.body["card_id"], call.body["count"], ...)
        return entry_json(entry), 201

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
1. the gate (`portal.api.auth.verify_request`, DESIGN.md §4 checks 1-5), then the scope
   (check 6, 403 `insufficient_scope` naming `required_scope`);
2. the query string against `query=` (unknown/repeated params refused);
3. the body against `body=` (415 non-JSON, 413 past 64 KiB, 400 `invalid_request` with
   `param` for unknown, mistyped or missing fields). An endpoint without `body=` accepts
   only an empty body or `{}`;
4. for every POST, `Idempotency-Key` (`portal.api.idempotency`): replay with
   `Idempotent-Replayed: true`, 409 `idempotency_key_reused` / `idempotency_request_in_progress`,
   scoped to (application, mode), 24 h. With a key, the view runs inside one write
   transaction together with storing its response, so domain functions must use
   `write_transaction()`/`atomic()` (which nest as savepoints), never commit on their own.
   A view that waits on the outside world (mail, SMS) declares `transactional=False`: it
   then never runs inside a transaction, commits its own writes before it waits, and
   undoes them itself if the outside call fails (see `portal.otp.request_otp`). A 429 or
   5xx response is not stored (its writes roll back), so a retry with the key runs again;
5. the response gets `X-Request-Id`, and one log line is written per request (request id,
   masked key, status, milliseconds; never a key, secret or body).

Errors: raise `ApiError(status, code, message, param=...)` (or the shorthands in
`portal.api.errors`: `invalid_request`, `not_found`, `conflict`). Any other exception is a
500 `api_error` whose message reveals nothing; the log gets the exception's type and
place, no traceback. Domain rules (transactions, ledgers) live in domain modules
(`portal/members.py`, `portal/ledger.py`, …); views stay thin.

Lists: `query=list_query({...filters})`, `response=list_of(ITEM_SCHEMA)`, and
`return page(select_scoped_to_caller, Model, call.query, serialize=item_json)` — see
`portal.api.pagination`.

Tests: `tests/api/helpers.py` signs requests for the Flask test client and for `requests`
against `live_server`; tests/api/test_scopes.py checks, for every operation of the OpenAPI
document, that a key without the scope gets 403 `insufficient_scope`.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time
from dataclasses import dataclass, field

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from portal.api.auth import Caller, require_scope, verify_request
from portal.api.errors import (
    REQUEST_ID_HEADER, ApiError, from_http_exception, internal_error, json_response, request_id,
)
from portal.api.idempotency import idempotency_key, run_idempotent
from portal.api.schema import Body, Query, parse_query
from portal.db import UNAVAILABLE_ERRORS

bp = Blueprint("api", __name__, url_prefix="/v1")
log = logging.getLogger("portal.api")

API_PREFIX = "/v1"
EMPTY_BODY = Body({})


@dataclass
class Endpoint:
    """One operation of the API, as declared by `@endpoint`."""

    name: str  # the Flask endpoint, "api.<name>"
    method: str
    rule: str  # Flask rule below /v1, e.g. "/members/<member_id>"
    scope: str | None
    view: object
    summary: str
    description: str = ""
    body: Body | None = None
    query: Query | None = None
    response: dict | None = None
    status: int = 200
    errors: dict = field(default_factory=dict)
    tag: str = ""
    authenticated: bool = True
    transactional: bool = True  # run inside the idempotency transaction (see portal.api.idempotency)

    @property
    def path(self) -> str:
        """The full path with Flask's `<x>` placeholders."""
        return API_PREFIX + self.rule


# Flask endpoint name ("api.create_member") -> Endpoint, in declaration order.
REGISTRY: dict[str, Endpoint] = {}

# Components of the OpenAPI document (`#/components/schemas/<name>`), filled by schema_ref.
SCHEMAS: dict[str, dict] = {}


def schema_ref(name: str, schema: dict) -> dict:
    """Register a named response schema; returns a `$ref` to it for `response=`."""
    if name in SCHEMAS and SCHEMAS[name] != schema:
        raise ValueError(f"two different schemas are both called {name}")
    SCHEMAS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass
class ApiCall:
    """What a view needs about the request it serves (see the module docstring)."""

    caller: Caller | None
    body: dict
    query: dict
    endpoint: Endpoint

    @property
    def partner_id(self) -> int:
        return self.caller.partner_id

    @property
    def mode(self) -> str:
        return self.caller.mode

    @property
    def application(self):
        return self.caller.application

    @property
    def request_id(self) -> str:
        return request_id()


def endpoint(method: str, rule: str, *, scope: str | None, summary: str, response: dict | None = None,
             status: int = 200, body: Body | None = None, query: Query | None = None,
             errors: dict | None = None, description: str = "", tag: str | None = None,
             authenticated: bool = True, transactional: bool = True):
    """Declare and register a /v1 endpoint (see the module docstring for a full example).

    `scope` is mandatory (None only for endpoints any valid key may call); `errors` maps
    extra documented statuses to a description (401/403/400 and friends are added
    automatically in the OpenAPI document). `transactional=False` is for a view that waits on
    the outside world (an SMTP server, an SMS gateway): with an Idempotency-Key it then
    runs outside any transaction, commits its own writes, and its response is stored after.
    """
    from portal.scopes import SCOPES

    method = method.upper()
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} on {method} {rule}")
    if method in ("GET", "DELETE") and body is not None:
        raise ValueError(f"{method} {rule} cannot take a body")

    def decorate(view):
        name = view.__name__
        if f"api.{name}" in REGISTRY:
            raise ValueError(f"two API endpoints are called {name}")
        ep = Endpoint(
            name=f"api.{name}", method=method, rule=rule, scope=scope, view=view, summary=summary,
            description=description or (view.__doc__ or "").strip(), body=body, query=query,
            response=response, status=status, errors=dict(errors or {}),
            tag=tag or _default_tag(view), authenticated=authenticated, transactional=transactional,
        )
        REGISTRY[ep.name] = ep

        def dispatch(**path_params):
            return _dispatch(ep, path_params)

        dispatch.__name__ = name
        dispatch.__doc__ = view.__doc__
        bp.add_url_rule(rule, endpoint=name, view_func=dispatch, methods=[method],
                        provide_automatic_options=False)
        return view

    return decorate


def _default_tag(view) -> str:
    return view.__module__.rsplit(".", 1)[-1].replace("_", " ").capitalize()


# -- the dispatcher -----------------------------------------------------------------------


def _dispatch(ep: Endpoint, path_params: dict) -> Response:
    """Gate, parse, run the view (idempotently for POST), shape errors."""
    try:
        raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
        caller = None
        if ep.authenticated:
            caller = verify_request(request.method, request.path, request.query_string.decode("latin-1"),
                                    raw, request.headers)
            g.api_key_masked = caller.key_masked
            require_scope(caller, ep.scope)
        query = parse_query(request.args, ep.query)
        body = {}
        if request.method not in ("GET", "HEAD", "DELETE") or raw:
            body = (ep.body or EMPTY_BODY).parse(raw, request.content_type)
        call = ApiCall(caller=caller, body=body, query=query, endpoint=ep)

        def run() -> Response:
            return _run_view(ep, call, path_params)

        key = idempotency_key(request.headers) if request.method == "POST" and caller else None
        if key is not None:
            return run_idempotent(caller, key, request.method, request.path, raw, run,
                                  transactional=ep.transactional)
        return run()
    except ApiError as exc:
        return exc.response()
    except HTTPException as exc:
        return from_http_exception(exc).response()
    except UNAVAILABLE_ERRORS:
        raise  # the database is away, not a bug: portal.db answers 503 service_unavailable
    except Exception as exc:  # the partner gets nothing but the request id
        _log_unhandled(exc)
        return internal_error().response()


def _run_view(ep: Endpoint, call: ApiCall, path_params: dict) -> Response:
    try:
        result = ep.view(call, **path_params)
    except ApiError as exc:
        return exc.response()
    if isinstance(result, Response):
        return result
    status = ep.status
    if isinstance(result, tuple):
        result, status = result
    return json_response(result, status)


def _log_unhandled(exc: BaseException) -> None:
    """Type and place only: a traceback or message could carry SQL or data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("api %s unhandled %s at %s", request_id(), exc.__class__.__name__, where)


# -- hooks for the whole app: /v1 routing errors, request ids, the log line ----------------


@bp.before_app_request
def _start_request():
    """Time the request; answer /v1 routing failures (404/405) in the API's error shape.

    Routing errors are raised after before-request hooks, so answering here keeps the
    portal's HTML error pages out of /v1 without touching the app's error handlers.
    """
    g.api_started = time.perf_counter()
    if not _is_api_path(request.path):
        return None
    if request.routing_exception is not None:
        exc = request.routing_exception
        if isinstance(exc, HTTPException) and exc.code in (404, 405):
            return from_http_exception(exc).response()
        return None
    if request.endpoint not in REGISTRY:
        # Fail closed: a /v1 route that did not come through @endpoint is never served.
        return from_http_exception(_NOT_FOUND).response()
    return None


class _NotFound(HTTPException):
    code = 404


_NOT_FOUND = _NotFound()


@bp.after_app_request
def _finish_request(response: Response) -> Response:
    """`X-Request-Id` on every response; one log line per API request."""
    response.headers.setdefault(REQUEST_ID_HEADER, request_id())
    if _is_api_path(request.path):
        elapsed_ms = (time.perf_counter() - g.get("api_started", time.perf_counter())) * 1000
        log.info("api %s %s %s %s %.1fms key=%s", request_id(), request.method, request.path,
                 response.status_code, elapsed_ms, g.get("api_key_masked") or _masked_header_key())
    return response


def _is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _masked_header_key() -> str:
    """The presented key, masked like the portal shows it, or `-`; never the key itself."""
    auth = request.headers.get("Authorization", "")
    token = auth.partition(" ")[2].strip()
    if token.startswith(("test_sk_", "prod_sk_")) and len(token) >= 20:
        return f"{token[:8]}{token[8:12]}…{token[-4:]}"
    return "-"


@bp.record_once
def _configure_logging(state):
    """Under gunicorn nothing configures our loggers: give the API and OTP console output
    a handler of their own (unless the host already routes them, as pytest does)."""
    for name in ("portal.api", "portal.otp"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not logger.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)


# Import every resource module so their @endpoint declarations register their routes.
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
