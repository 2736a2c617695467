"""The application factory: settings, database, the portal's blueprints and the API."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from flask import Flask, jsonify, send_from_directory
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from portal import db
from portal.config import load_settings, use_settings

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
    ConfigError rather than created."""
    settings = load_settings(config, create=create)
    use_settings(settings)
    app = Flask("portal", template_folder=_templates_dir(), static_folder=str(_HERE / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update(settings.extra)
    app.session_interface = PortalSessions()
    if settings.trusted_proxies:
        # Behind a TLS-terminating reverse proxy: take the client's address, scheme and host
        # from the X-Forwarded-* headers the trusted proxies set (and from nobody else).
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    logging.getLogger("portal").setLevel(logging.INFO)

    db.bind(db.open_database(settings.database_url))
    db.init_app(app)

    from portal import api, web

    web.init_app(app)
    api.init_app(app)
    from portal import metrics

    metrics.init_app(app)
    # Last, on top of whatever request class the extensions installed (htmx-flask has its own).
    app.request_class = type("BoundedRequest", (BoundedBody, app.request_class), {})

    @app.get("/static/htmx/<path:filename>")
    def htmx_static(filename):
        """htmx itself, served from the installed package."""
        return send_from_directory(_htmx_dir(), filename, max_age=86400)

    @app.get("/healthz")
    def healthz():
        """200 when the database answers, 503 otherwise (for load balancers and probes).
        GET is answered by HealthCheckFirst in front of Flask; this serves HEAD."""
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

    app.wsgi_app = HealthCheckFirst(app.wsgi_app)
    return app


class PortalSessions(SecureCookieSessionInterface):
    """The portal's cookie sessions. An API request (/v1), which authenticates with its key,
    opens none: reading and checking a session cookie cost ~0.1 ms of every API call."""

    def open_session(self, app, request):
        if request.path == "/v1" or request.path.startswith("/v1/"):
            return self.null_session_class()
        return super().open_session(app, request)


def database_answers() -> bool:
    """Whether `SELECT 1` runs, on this thread's connection."""
    try:
        db.database.execute_sql("SELECT 1")
    except Exception:  # any driver error means "not healthy"; details go nowhere
        db.release_connection()  # a broken connection is not kept
        return False
    return True


class HealthCheckFirst:
    """`GET /healthz` answered in front of Flask, with the route's answer and the
    portal's security headers and an X-Request-Id.

    Probes call it many times a second, and the per-request work of the portal and the
    API (sessions, CSRF, roles, the request log) has nothing to do for it: in front of
    Flask it costs about what a bare Flask app's answer costs.
    """

    def __init__(self, wsgi_app):
        from portal.web import SECURITY_HEADERS

        self.wsgi_app = wsgi_app
        self.headers = list(SECURITY_HEADERS.items())

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/healthz" or environ.get("REQUEST_METHOD") != "GET":
            return self.wsgi_app(environ, start_response)
        try:
            ok = database_answers()
        finally:
            db.end_request()
        body = b'{"status":"ok"}\n' if ok else b'{"status":"unavailable"}\n'
        start_response("200 OK" if ok else "503 SERVICE UNAVAILABLE", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("X-Request-Id", "req_" + secrets.token_hex(12)), *self.headers])
        return [body]
