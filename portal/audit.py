"""The audit trail: every sign-up, failed log-in, application, secret and key change."""

from __future__ import annotations

from flask import has_request_context, request

from portal.models import AuditEvent


def client_ip() -> str:
    """The caller's address as the WSGI server saw it (a proxy's ProxyFix sets it right)."""
    return (request.remote_addr or "") if has_request_context() else ""


def record(action: str, *, partner=None, user=None, actor: str | None = None, target: str = "", detail: str = "") -> AuditEvent:
    """Write one audit event. Callers pass ids and names, never a secret or a key."""
    if actor is None:
        actor = user.email if user is not None else ("cli" if not has_request_context() else "anonymous")
    return AuditEvent.create(
        partner=partner if partner is not None else (user.partner_id if user is not None else None),
        user=user,
        actor=actor[:254],
        action=action,
        target=target[:120],
        detail=detail,
        ip=client_ip()[:64],
    )
