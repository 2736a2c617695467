"""The audit trail: sign-ups, log-ins and failed log-ins, two-factor and password changes,
invites, role changes and removals, applications, secrets, keys and program changes.

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


# -- reading the log ------------------------------------------------------------------------

PAGE_SIZE = 50


def events_of(partner, *, actor: str = "", action: str = "", before: int | None = None,
              limit: int | None = PAGE_SIZE) -> list[AuditEvent]:
    """A partner's audit events, newest first, optionally of one actor (an email) and one
    action, older than the event `before` (for paging)."""
    query = AuditEvent.select().where(AuditEvent.partner == partner)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if before:
        query = query.where(AuditEvent.id < before)
    query = query.order_by(AuditEvent.id.desc())
    if limit:
        query = query.limit(limit)
    return list(query)


def actors_of(partner) -> list[str]:
    """Everyone who appears in a partner's audit log (removed users too), by email."""
    rows = (AuditEvent.select(AuditEvent.actor).where(AuditEvent.partner == partner)
            .distinct().order_by(AuditEvent.actor).tuples())
    return [actor for (actor,) in rows]


def actions_of(partner) -> list[str]:
    """The actions that appear in a partner's audit log."""
    rows = (AuditEvent.select(AuditEvent.action).where(AuditEvent.partner == partner)
            .distinct().order_by(AuditEvent.action).tuples())
    return [action for (action,) in rows]
