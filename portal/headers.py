"""The security headers on every answer: portal pages, API responses and /healthz alike."""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
])

# On every response (a view may set its own instead).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_ITEMS = tuple((name.lower(), (name, value)) for name, value in SECURITY_HEADERS.items())


class SecurityHeaders:
    """WSGI middleware in front of the portal's app and the API's (portal.app.FrontDoor
    answers GET /healthz with them itself): each security header an answer does not set
    itself is added as it starts (plain tuples, one pass over what the answer has: this
    runs on every request)."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers = [*headers, *(item for name, item in _ITEMS if name not in present)]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)
