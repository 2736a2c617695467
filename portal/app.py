"""The application factory: settings, database, the portal's blueprints and the API."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, jsonify, send_from_directory
from flask.sessions import SessionInterface
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from portal import db
from portal.config import load_settings, use_settings
from portal.headers import SECURITY_HEADERS, SecurityHeaders
from portal.logs import REQUEST_ID_HEADER, new_request_id

_HERE = Path(__file__).parent


def _templates_dir() -> str:
    """templates/ sits at the repository root in a checkout and inside the package when
    installed from a wheel (pyproject maps it to portal/templates)."""
    packaged = _HERE / "templates"
    return str(packaged if packaged.is_dir() else _HERE.parent / "templates")


def _htmx_dir() -> str:
    """htmx 2 from the pip-installed django-js-lib-htmx package: no CDN, no copied file."""
    import js_lib_htmx

    return str(Path(js_lib_htmx.__file__).parent / "static" / "htmx")


class _AtMostStream(LimitedStream):
    """A body without Content-Length (chunked), read up to the limit: one byte more than
    the limit is a 413, not a body silently cut at the limit (werkzeug's LimitedStream
    stops reading at the limit and returns what it has)."""

    def on_exhausted(self) -> None:
        if self._stream.read(1):
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class BoundedBody:
    """A request mixin enforcing MAX_CONTENT_LENGTH on every body however it is framed: a
    Content-Length past it is refused before reading (as werkzeug does), and a chunked
    body is refused once it runs past it."""

    @cached_property
    def stream(self):
        if self.shallow:
            raise RuntimeError("a shallow request cannot read its body")
        limit = self.max_content_length
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            return _AtMostStream(self.environ["wsgi.input"], limit, is_max=True)
        return get_input_stream(self.environ, max_content_length=limit)


def create_app(config: dict | None = None, *, create: bool = True) -> Flask:
    """Build the app. `config` overrides settings by their env name without the
    LOYALTY_ prefix, e.g. {"DATA_DIR": tmp, "DATABASE_URL": "sqlite:///…"}. With
    `create=False` (the CLI without --init) a missing data dir or server secret is a
    ConfigError rather than created.

    Two Flask apps behind one front door (`FrontDoor`): the portal (pages, /healthz,
    /readyz, /metrics, the SDK wheel) and the /v1 API (`create_api_app`), which a signed
    call reaches without the portal's sessions, CSRF, roles, htmx or page hooks. The
    returned app is the portal; its `wsgi_app` is the front door, so a test client or a
    WSGI server gets both.
    """
    settings = load_settings(config, create=create)
    use_settings(settings)
    app = _flask_app(settings, template_folder=_templates_dir(), static_folder=str(_HERE / "static"))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
    )
    app.config.update(settings.extra)
    logging.getLogger("portal").setLevel(logging.INFO)

    db.bind(db.open_database(settings.database_url))
    db.init_app(app)

    from portal import metrics, web

    web.init_app(app)
    metrics.init_app(app)
    _bound_bodies(app)  # last, on top of whatever request class the extensions installed

    @app.get("/static/htmx/<path:filename>")
    def htmx_static(filename):
        """htmx itself, served from the installed package."""
        return send_from_directory(_htmx_dir(), filename, max_age=86400)

    @app.get("/healthz")
    def healthz():
        """200 when the database answers, 503 otherwise (for load balancers and probes).
        GET is answered by FrontDoor in front of Flask; this serves HEAD."""
        if not database_answers():
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        """200 when the database answers, its schema is current and (when delivery runs) the
        delivery worker reported within the last minute; else 503 with the
        reasons (portal.selfcheck; no driver text, hosts or secrets in them)."""
        from portal.selfcheck import problems

        reasons = problems(settings, secrets=False, detail=False, worker=True)
        if reasons:
            return jsonify(status="not ready", reasons=reasons), 503, {"Cache-Control": "no-store"}
        return jsonify(status="ready"), 200, {"Cache-Control": "no-store"}

    from portal.api import API_PREFIX

    api_app = create_api_app(settings)
    app.extensions["loyalty_api_app"] = api_app
    app.wsgi_app = FrontDoor(SecurityHeaders(_behind_proxies(api_app.wsgi_app, settings)),
                             SecurityHeaders(_behind_proxies(app.wsgi_app, settings)), api_prefix=API_PREFIX)
    return app


def create_api_app(settings) -> Flask:
    """The /v1 API's own Flask app: its blueprint, the database's per-request hooks and the
    request body limit, nothing of the portal's (no session, CSRF, login, roles, htmx or
    page log). `create_app` builds it and puts it behind the front door; the database is
    the one `create_app` bound."""
    from portal import api

    app = _flask_app(settings, static_folder=None)
    app.config.update(settings.extra)
    app.session_interface = NoSessions()
    db.init_app(app)
    api.init_app(app)
    _bound_bodies(app)
    return app


def _bound_bodies(app: Flask) -> None:
    """The app's requests enforce MAX_CONTENT_LENGTH however a body is framed (BoundedBody),
    on top of the request class it has (htmx-flask installs its own on the portal)."""
    app.request_class = type("BoundedRequest", (BoundedBody, app.request_class), {})


class NoSessions(SessionInterface):
    """An API call authenticates with its key: no session cookie is read, checked or set
    (reading and checking one cost ~0.1 ms of every call)."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def api_app_of(app: Flask) -> Flask:
    """The API app `create_app` put behind the portal's front door (its URL map holds /v1)."""
    return app.extensions["loyalty_api_app"]


class _Flask(Flask):
    """Flask, deciding once per hook or view (not on every request) whether it needs an
    event loop: the check inspects the function's code flags, five times per API call."""

    MAX_REMEMBERED = 4096  # a function made per request (after_this_request) is not kept forever

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_functions: dict = {}

    def ensure_sync(self, func):
        wrapped = self._sync_functions.get(func)
        if wrapped is None:
            wrapped = super().ensure_sync(func)
            if len(self._sync_functions) < self.MAX_REMEMBERED:
                self._sync_functions[func] = wrapped
        return wrapped


def _flask_app(settings, **folders) -> Flask:
    app = _Flask("portal", **folders)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    return app


def _behind_proxies(wsgi_app, settings):
    """Behind a TLS-terminating reverse proxy: take the client's address, scheme and host
    from the X-Forwarded-* headers the trusted proxies set (and from nobody else)."""
    if not settings.trusted_proxies:
        return wsgi_app
    from werkzeug.middleware.proxy_fix import ProxyFix

    n = settings.trusted_proxies
    return ProxyFix(wsgi_app, x_for=n, x_proto=n, x_host=n)


def database_answers() -> bool:
    """Whether `SELECT 1` runs, on this thread's connection."""
    try:
        db.database.execute_sql("SELECT 1")
    except Exception:  # any driver error means "not healthy"; details go nowhere
        db.release_connection()  # a broken connection is not kept
        return False
    return True


class FrontDoor:
    """Where a request goes: `GET /healthz` is answered here, with the route's answer, the
    security headers and an X-Request-Id; /v1 goes to the API app; the rest to the portal.

    Probes call /healthz many times a second, and the per-request work of the portal and
    the API (sessions, CSRF, roles, the request log) has nothing to do for it: answered
    here it costs about what a bare Flask app's answer costs.
    """

    HEALTHZ_HEADERS = [("Content-Type", "application/json"), *SECURITY_HEADERS.items()]

    def __init__(self, api, portal, *, api_prefix: str):
        self.api, self.portal = api, portal
        self.prefix, self.prefix_dir = api_prefix, api_prefix + "/"

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix_dir):
            return self.api(environ, start_response)
        if path != "/healthz" or environ.get("REQUEST_METHOD") != "GET":
            return self.portal(environ, start_response)
        try:
            ok = database_answers()
        finally:
            db.end_request()
        body = b'{"status":"ok"}\n' if ok else b'{"status":"unavailable"}\n'
        start_response("200 OK" if ok else "503 SERVICE UNAVAILABLE", [
            *self.HEALTHZ_HEADERS, ("Content-Length", str(len(body))), (REQUEST_ID_HEADER, new_request_id())])
        return [body]
