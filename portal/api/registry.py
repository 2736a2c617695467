"""The registry of /v1 endpoints and the dispatcher every one of them runs through.

`@endpoint` declares an operation (route, scope, schemas) and registers it; `_dispatch`
runs the gate, parses the request, runs the view (idempotently for POST) and shapes every
failure into the API's error format. See the package docstring for how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from portal.api.errors import (
    ApiError,
    from_domain_error,
    from_http_exception,
    internal_error,
    invalid_request,
    json_response,
    request_id,
    secrets_unreadable,
    service_unavailable,
)
from portal.api.gate import Caller, check_rate_limit, rate_limit_headers, require_scope, verify_request
from portal.api.idempotency import idempotency_key, run_idempotent
from portal.api.schema import Body, Query, parse_query
from portal.credentials import SecretUnreadable
from portal.db import UNAVAILABLE_ERRORS, release_connection
from portal.domain import DomainError
from portal.logs import first_line, get_logger, where_raised
from portal.signing import NotUtf8, query_pairs

log = get_logger("portal.api")

bp = Blueprint("api", __name__, url_prefix="/v1")

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
            return rate_limit_headers(_dispatch(ep, path_params))

        dispatch.__name__ = name
        dispatch.__doc__ = view.__doc__
        # merge_slashes=False: an id that decodes to "/…" (`/v1/members/%2F0`) is no such
        # member (a JSON 404), not a redirect to a merged path.
        bp.add_url_rule(rule, endpoint=name, view_func=dispatch, methods=[method],
                        provide_automatic_options=False, merge_slashes=False)
        return view

    return decorate


def _default_tag(view) -> str:
    return view.__module__.rsplit(".", 1)[-1].replace("_", " ").capitalize()


# -- the dispatcher -----------------------------------------------------------------------


def _dispatch(ep: Endpoint, path_params: dict) -> Response:
    """Gate, parse, run the view (idempotently for POST), shape errors."""
    req = request._get_current_object()  # one proxy lookup, not one per attribute
    try:
        # One strict decoding of the query serves the signature and the view alike; escapes
        # that are not UTF-8 are refused here, before the signature is checked.
        try:
            pairs = query_pairs(req.query_string)
        except NotUtf8 as exc:
            raise invalid_request(str(exc), exc.param) from None
        method, environ = req.method, req.environ
        # 413 past MAX_CONTENT_LENGTH, however it is framed.
        raw = req.get_data(cache=True) if _framed_body(environ) else b""
        caller = None
        if ep.authenticated:
            caller = verify_request(method, req.path, pairs, raw, req.headers, req.remote_addr, ep.scope)
            g.api_caller = caller
            require_scope(caller, ep.scope)
            check_rate_limit(caller)
        query = parse_query(pairs, ep.query)
        body = {}
        if method not in ("GET", "HEAD", "DELETE") or raw:
            body = (ep.body or EMPTY_BODY).parse(raw, req.content_type)
        call = ApiCall(caller=caller, body=body, query=query, endpoint=ep)

        def run() -> Response:
            return _run_view(ep, call, path_params)

        key = idempotency_key(req.headers) if method == "POST" and caller else None
        if key is not None:
            return run_idempotent(caller, key, method, req.path, raw, run, transactional=ep.transactional)
        return run()
    except ApiError as exc:
        return exc.response()
    except DomainError as exc:
        return from_domain_error(exc).response()
    except HTTPException as exc:
        return from_http_exception(exc).response()
    except UNAVAILABLE_ERRORS as exc:  # the database is away, not a bug
        log.warning("api %s database unavailable: %s", request_id(), first_line(exc))
        release_connection()
        return service_unavailable().response()
    except SecretUnreadable as exc:  # the server's keys, not a bug: see portal.api.gate
        log.error("api %s a stored secret cannot be decrypted with LOYALTY_ENCRYPTION_KEY (%s); answered 503; "
                  "loyalty-portal check lists what is unreadable", request_id(), where_raised(exc))
        release_connection()
        return secrets_unreadable().response()
    except Exception as exc:  # the partner gets nothing but the request id
        _log_unhandled(exc)
        return internal_error().response()


def _framed_body(environ) -> bool:
    """Whether to read a body: always for a POST (a server may hand over a de-chunked
    stream without its Transfer-Encoding), and for a GET or DELETE only when one is framed
    (RFC 9112 §6.3: a Content-Length above 0, or a Transfer-Encoding). Reading none costs
    a stream and a read all the same, on every signed read."""
    return environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "DELETE") \
        or environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ


def _run_view(ep: Endpoint, call: ApiCall, path_params: dict) -> Response:
    """The view's result as a response. A refusal (ApiError, DomainError) is a response
    too, so that an Idempotency-Key stores it like any other answer."""
    try:
        result = ep.view(call, **path_params)
    except ApiError as exc:
        return exc.response()
    except DomainError as exc:
        return from_domain_error(exc).response()
    if isinstance(result, Response):
        return result
    status = ep.status
    if isinstance(result, tuple):
        result, status = result
    return json_response(result, status)


def _log_unhandled(exc: BaseException) -> None:
    """Type and place only: a traceback or message could carry SQL or data."""
    log.error("api %s unhandled %s", request_id(), where_raised(exc))
