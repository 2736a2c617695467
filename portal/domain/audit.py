"""The audit trail: every sign-up, failed log-in, application, secret and key change.

The address an action came from is set once per web request (`acting_from`, by the
portal's plumbing); domain code records events without knowing about requests. Commands
run from a shell record no address.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from portal.models import AuditEvent

_origin: ContextVar[str] = ContextVar("audit_origin", default="")


def acting_from(address: str) -> Token:
    """Record `address` on audit events made until `acting_from_reset(token)`."""
    return _origin.set(address or "")


def acting_from_reset(token: Token) -> None:
    _origin.reset(token)


def record(action: str, *, partner=None, user=None, actor: str | None = None, target: str = "", detail: str = "") -> AuditEvent:
    """Write one audit event. Callers pass ids and names, never a secret or a key."""
    origin = _origin.get()
    if actor is None:
        actor = user.email if user is not None else ("anonymous" if origin else "cli")
    return AuditEvent.create(
        partner=partner if partner is not None else (user.partner_id if user is not None else None),
        user=user,
        actor=actor[:254],
        action=action,
        target=target[:120],
        detail=detail,
        ip=origin[:64],
    )
