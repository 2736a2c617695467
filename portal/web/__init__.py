"""The portal: web plumbing shared by every portal blueprint, and the blueprints.

One module per sidebar area: `auth` (sign-up, log-in, the two-factor step, forgotten
passwords, joining a team), `home`, `developer` (applications, secrets, keys), `program`
(cards, rewards, referral rule), `team` (teammates, invites, roles), `account` (password,
two-factor, sessions), `audit` (the audit log), `sdk` (the SDK's page, README and wheel,
for anyone), `docs` (the guide and the API reference), `request_log` (an application's
/v1 requests and a request's page). This module holds what they share:
log-in sessions (flask-login on top of server-side session rows, portal.domain.sessions), CSRF
protection for every state-changing request, one check that every form field and address
is text a database can store (`unstorable_input_message`), htmx awareness (a partial or a full page
from the same templates, flash messages out of band), every HTML error page (without
stack traces), and the headers of pages (the security headers every answer carries are
added in front of the app, portal.headers). The /v1 API is a Flask app of its own, with
its own authentication and JSON errors (portal.api, portal.app.create_api_app): no /v1
request reaches this module's hooks.

`admin` is the operator console (DESIGN.md §14): the platform's operators, not partners.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    flash,
    g,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user
from htmx_flask import Htmx
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from portal.config import current_settings
from portal.db import UNAVAILABLE_ERRORS, database, release_connection
from portal.domain import DomainError, audit
from portal.domain.applications import owned_application
from portal.inputs import unstorable
from portal.logs import REQUEST_ID_HEADER, escape_for_log, first_line, get_logger, request_id, where_raised

log = get_logger(__name__)

CSRF_SESSION_KEY = "_csrf"
SESSION_ID_KEY = "sid"  # the server-side session's id, in the signed cookie
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")

# htmx settings: never keep page snapshots (they could hold a show-once secret) in
# localStorage, no eval, and swap 4xx/5xx bodies too (ours carry HX-Reswap: none and an
# out-of-band message, so an error is shown instead of silently ignored).
HTMX_CONFIG = {
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    "includeIndicatorStyles": False,
    "allowEval": False,
    "allowScriptTags": False,
    "selfRequestsOnly": True,
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "[45]..", "swap": True, "error": True},
    ],
}

ERROR_TEXT = {
    400: ("Bad request", "The request could not be understood. Go back, reload the page and try again."),
    401: ("Log in required", "Log in to continue."),
    403: ("Not allowed", "You are not allowed to do that."),
    404: ("Page not found", "There is nothing here. The link may be mistyped or out of date."),
    409: ("Cannot be done", "This cannot be done in the current state. Reload the page to see it."),
    405: ("Method not allowed", "This address does not accept that kind of request. Use the buttons on the page instead."),
    413: ("Too much data", "The form sent more data than this site accepts. Shorten what you entered and try again."),
    422: ("Check the form", "Some fields need attention."),
    429: ("Slow down", "Too many requests. Wait a moment and try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. It has been logged; please try again."),
    502: ("Could not be delivered", "A service this depends on did not answer. Please try again in a moment."),
    503: ("Temporarily unavailable", "The service cannot reach its database right now. Please try again in a moment."),
}

# Requests without a log line of their own: probes and static files.
UNLOGGED_ENDPOINTS = ("static", "htmx_static", "healthz", "readyz")

CSRF_FAILURE_MESSAGE = (
    "This form has expired or did not come from this site, so nothing was changed. "
    "Reload the page and try again."
)


def unstorable_input_message() -> str | None:
    """What is wrong when a portal request carries text no database can store (a NUL, an
    unpaired surrogate) in its path, its query or any form field, or None when all is well.

    Every portal form passes through here (a request hook), so no form has to remember
    to check each of its fields; the message names the field and says nothing was changed.
    """
    reason = unstorable(request.path)
    if reason is not None:
        return f"The address holds {reason}, which this site cannot use. Check the link."
    sources = [request.args]
    if request.method in STATE_CHANGING:
        sources.append(request.form)
    for values in sources:
        for name, value in values.items(multi=True):
            reason = unstorable(name) or unstorable(value)
            if reason is not None:
                label = escape_for_log(name).replace("_", " ")
                return (f"The field “{label}” holds {reason}, which cannot be saved, so nothing was changed. "
                        "Remove it (it often comes from pasting) and try again.")
    return None

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"


# -- htmx -------------------------------------------------------------------------------


def is_htmx() -> bool:
    """True for a request htmx made (and not a history restore, which wants a full page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def flashes_oob() -> str:
    """The flash region, marked for an out-of-band swap, holding the pending messages."""
    return render_template("_flashes.html", oob=True)


def render_partial(template: str, **context) -> str:
    """A partial for an htmx swap, followed by the flash messages out of band."""
    return render_template(template, **context) + flashes_oob()


def no_store(response: Response) -> Response:
    """Mark a response that carries a show-once secret: no cache may keep it."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def owned_app_or_404(app_id: str):
    """The signed-in partner's application, or 404 (another partner's looks like none)."""
    application = owned_application(current_user.partner_id, app_id)
    if application is None:
        abort(404)
    return application


def see_other(location: str) -> Response:
    """A 303 after a state change, so reload never posts twice."""
    return redirect(location, code=303)


# -- safe redirects ---------------------------------------------------------------------


def safe_next(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if not target or not isinstance(target, str):
        return default
    target = target.strip()
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def login_url_for_current_page() -> str:
    """The log-in page, with `next` pointing back at the page the user was on."""
    if request.htmx:
        current = request.htmx.current_url or ""
        parts = urlsplit(current)
        here = parts.path + (f"?{parts.query}" if parts.query else "") if parts.netloc == request.host else ""
    else:
        here = request.full_path if request.method == "GET" else ""
    here = safe_next(here.rstrip("?"), "")
    return url_for("auth.login", next=here) if here and here != "/" else url_for("auth.login")


# -- CSRF -------------------------------------------------------------------------------


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def rotate_csrf_token() -> None:
    """A fresh token after log-in and log-out, so a token seen before does not carry over."""
    session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)


def csrf_field() -> Markup:
    """The hidden form field every portal form carries."""
    return Markup('<input type="hidden" name="%s" value="%s">') % (CSRF_FIELD, csrf_token())


def _csrf_ok() -> bool:
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


class CsrfFailure(HTTPException):
    code = 400
    description = CSRF_FAILURE_MESSAGE


# -- responses for errors ---------------------------------------------------------------


def error_response(code: int, message: str | None = None, *, standalone: bool = False) -> Response:
    """An error as the client wants it: an out-of-band message for htmx, a full HTML page
    otherwise. Never a stack trace. A `standalone` page does not look the user up (the
    database may be what failed)."""
    title, default_message = ERROR_TEXT.get(code, ("Error", "Something went wrong."))
    message = message or default_message
    if is_htmx():
        # Swap nothing in place; show the message in the flash region.
        html = render_template("_flashes.html", oob=True, messages=[("error", message)])
        response = make_response(html, code)
        response.headers["HX-Reswap"] = "none"
        return response
    try:
        html = render_template("errors/error.html", code=code, title=title, message=message,
                               standalone=standalone)
    except Exception as exc:  # the error page itself failed (e.g. no database): plain text, still no trace
        log.error("error page could not be rendered: %s", where_raised(exc))
        html = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{message}</p>"
    return make_response(html, code)


# The page status of each kind of domain refusal (portal.domain.DomainError.kind).
DOMAIN_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "rate_limited": 429, "unavailable": 502}


def _database_unavailable(exc):
    """503 while the database does not answer: the portal's own page, rendered without
    touching the database again. The driver's message (which may name hosts or SQL) goes
    to the log only."""
    log.warning("database unavailable (%s %s): %s", request.method, request.path, first_line(exc))
    release_connection()
    response = error_response(503, standalone=True)
    response.headers["Retry-After"] = "1"
    response.headers["Cache-Control"] = "no-store"
    return response


def form_errors(exc: DomainError, default_field: str) -> dict[str, str]:
    """A domain refusal as a form's field messages: {field: message}."""
    return {exc.field or default_field: exc.message}


def unauthorized_response() -> Response:
    """Not logged in: htmx gets HX-Redirect to the log-in page (never a log-in form swapped
    into a table); a browser gets a redirect."""
    login = login_url_for_current_page()
    if request.htmx:
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login
        return response
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(login, code=303 if request.method != "GET" else 302)


# -- wiring -----------------------------------------------------------------------------


def _load_user(user_id: str):
    """The signed-in user: only while the cookie's session id names a live session row of
    that user (logged out, ended everywhere, idle or removed: nobody)."""
    from portal.domain.sessions import user_for_session

    return user_for_session(session.get(SESSION_ID_KEY), user_id)


def client_address() -> str:
    """The caller's address (after ProxyFix when LOYALTY_TRUSTED_PROXIES is set)."""
    return request.remote_addr or ""


def begin_session(user) -> None:
    """Sign `user` in on a fresh session (no fixation): a new server-side session row, a
    new cookie, a fresh CSRF token. A session this browser had before is ended."""
    from flask_login import login_user

    from portal.domain.sessions import end_session, start_session

    end_session(session.get(SESSION_ID_KEY))
    session.clear()
    session[SESSION_ID_KEY] = start_session(user, ip=client_address(),
                                            user_agent=request.headers.get("User-Agent", ""))
    login_user(user)
    rotate_csrf_token()


def end_current_session() -> None:
    """Sign this browser out: its session row is deleted, so a copy of the cookie is
    refused too."""
    from flask_login import logout_user

    from portal.domain.sessions import end_session

    end_session(session.get(SESSION_ID_KEY))
    logout_user()
    session.clear()
    rotate_csrf_token()


def init_app(app) -> None:
    """Mount the portal's blueprints with sessions, CSRF checks, error pages, security
    headers and template helpers."""
    from portal.web import (
        account,
        audit_log,
        auth,
        developer,
        docs,
        home,
        permissions,
        program,
        request_log,
        sdk,
        team,
        webhooks,
    )

    Htmx(app)  # request.htmx: the HX-* request headers, parsed
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(unauthorized_response)

    @app.before_request
    def _start_clock():
        g.portal_started = time.perf_counter()  # for the request's log line

    @app.before_request
    def _connect():
        # A portal page needs the database (the user, the partner's data): connect up front,
        # so a database that is away answers the portal's 503 page, not half a page.
        # The SDK wheel needs no database: pip installs keep working while it is away.
        if request.endpoint not in ("static", "htmx_static", "healthz", "readyz", "sdk.wheel", "metrics"):
            database.connect(reuse_if_open=True)

    @app.before_request
    def _note_origin():
        # Audit records name the address a portal action came from (after ProxyFix).
        g.audit_origin = audit.acting_from(request.remote_addr or "")

    @app.teardown_request
    def _forget_origin(exc):
        token = g.pop("audit_origin", None)
        if token is not None:
            audit.acting_from_reset(token)

    @app.before_request
    def _protect_state_changes():
        if request.method not in STATE_CHANGING:
            return None
        endpoint = request.endpoint or ""
        # An expired session on an htmx request goes to the log-in page before anything
        # else, even before the CSRF check (the token lived in the expired session).
        if request.htmx and not current_user.is_authenticated \
                and not endpoint.startswith("auth."):
            return unauthorized_response()
        if endpoint == "auth.logout" and not current_user.is_authenticated:
            return see_other(url_for("auth.login"))  # already logged out: nothing to protect
        if not _csrf_ok():
            log.info("csrf check failed for %s %s", request.method, request.path)
            return error_response(400, CSRF_FAILURE_MESSAGE)
        return None

    @app.before_request
    def _check_role():
        return permissions.check_route()

    @app.before_request
    def _refuse_unstorable_input():
        # After CSRF and the role check: only a legitimate form gets this far.
        message = unstorable_input_message()
        if message is not None:
            return error_response(400, message)
        return None

    @app.after_request
    def _log_request(response: Response) -> Response:
        # One line per portal request, with the client's address (after ProxyFix). Probes
        # and static files would drown the rest; /v1 has its own line (portal.api).
        if request.endpoint not in UNLOGGED_ENDPOINTS:
            elapsed_ms = (time.perf_counter() - g.get("portal_started", time.perf_counter())) * 1000
            user = g.get("_login_user")  # flask-login's, if this request looked it up: no query here
            user_id = getattr(user, "id", None)
            client = request.remote_addr or "-"
            log.info("portal %s %s %s %.1fms client=%s user=%s", request.method, request.path,
                     response.status_code, elapsed_ms, client, user_id or "-",
                     extra={"fields": {"method": request.method, "path": request.path,
                                       "status": response.status_code, "duration_ms": round(elapsed_ms, 1),
                                       "client": client, "user_id": user_id}})
        return response

    @app.after_request
    def _page_headers(response: Response) -> Response:
        headers = response.headers  # (the security headers: portal.headers.SecurityHeaders)
        headers.setdefault(REQUEST_ID_HEADER, request_id())
        if response.mimetype == "text/html":
            headers.add("Vary", "HX-Request")
            # Signed-in pages hold an organisation's data: keep them out of shared caches.
            if current_user and current_user.is_authenticated and "Cache-Control" not in headers:
                headers["Cache-Control"] = "no-store"
        return response

    for blueprint in (auth.bp, home.bp, developer.bp, program.bp, team.bp, account.bp, audit_log.bp, docs.bp,
                      sdk.bp, webhooks.bp, request_log.bp):
        app.register_blueprint(blueprint)
    from portal.web import admin  # the operator console: operators, not partners

    app.register_blueprint(admin.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        if isinstance(exc, CsrfFailure):
            return error_response(400, CSRF_FAILURE_MESSAGE)
        return error_response(exc.code)

    @app.errorhandler(permissions.Forbidden)
    def _forbidden(exc: permissions.Forbidden):
        return error_response(403, exc.message)

    @app.errorhandler(DomainError)
    def _refused(exc: DomainError):
        """A rule refused what a view did not turn into a form message itself."""
        response = error_response(DOMAIN_STATUS[exc.kind], exc.message)
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    for error_class in UNAVAILABLE_ERRORS:
        app.register_error_handler(error_class, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        log.error("unhandled error on %s %s: %s", request.method, request.path, where_raised(exc))
        return error_response(500)

    @app.context_processor
    def _template_helpers():
        return {
            "csrf_token": csrf_token,
            "csrf_field": csrf_field,
            "htmx_config": HTMX_CONFIG,
            "is_htmx": is_htmx,
            "can": permissions.allowed,
            "signup_mode": current_settings().signup,
        }

    @app.template_filter("when")
    def _when(value) -> str:
        """A stored UTC time as `26 Nov 2026, 23:56 UTC`."""
        if value is None:
            return ""
        return value.strftime("%-d %b %Y, %H:%M UTC")

    @app.template_filter("iso")
    def _iso(value) -> str:
        return value.replace(microsecond=0).isoformat() + "Z" if value is not None else ""

    app.jinja_env.globals["get_flashed_messages"] = get_flashed_messages
