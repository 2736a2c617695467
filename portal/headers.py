"""The security headers on every answer, portal page and API response alike."""

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

# On every response (a view may set its own).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_ITEMS = tuple(SECURITY_HEADERS.items())


def add_security_headers(headers) -> None:
    """Add each security header the response does not set itself: one pass over what it
    has, not a scan per header (this runs on every answer)."""
    present = {name.lower() for name, _ in headers.items()}
    for name, value in _ITEMS:
        if name.lower() not in present:
            headers.add(name, value)
