"""Operators: the people who run the platform (DESIGN.md §14).

An operator is a `User` with the role "operator" and no partner. That keeps one log-in,
one session table and one two-factor, throttle and reset path for everybody, while an
operator can reach no partner's pages, secrets or keys: the role ranks below every
partner role (portal.domain.roles), so no partner route or action admits it, and with no
partner nothing scoped to a partner ever finds anything of theirs. What operators see of
partners is metadata: names, owners, dates, statuses and counts, and each partner's audit
log — never an App Secret, a key or a program's members.

They approve partners who signed up under LOYALTY_SIGNUP=approval, and suspend and
reactivate partners. A partner's status is read by the API gate on every call (check 5),
so a change takes effect on the next call in every server process. Each change is a
conditional update (it happens once, from the state the operator saw) with its audit
record in the partner's own audit log, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from portal.db import write_transaction
from portal.domain import Conflict, Invalid, NotFound, audit
from portal.domain.roles import OPERATOR
from portal.inputs import row_id
from portal.models import ApiKey, Application, AuditEvent, Partner, User, utcnow

SEARCH_MAX = 120
PARTNERS_SHOWN = 200
STATUS_LABELS = {"active": "Active", "pending": "Waiting for approval", "suspended": "Suspended"}

# operator action -> (the status it starts from, the status it sets, audit action, past tense)
TRANSITIONS = {
    "approve": (("pending",), "active", "operator.partner_approved", "approved"),
    "suspend": (("active", "pending"), "suspended", "operator.partner_suspended", "suspended"),
    "reactivate": (("suspended",), "active", "operator.partner_reactivated", "reactivated"),
}


def create_operator(email: str, password: str) -> User:
    """An operator user (no partner). Invalid for a bad email or password, Conflict when
    the email already has an account (a partner's user cannot be made an operator)."""
    from portal.domain.accounts import check_password_policy, normalise_email, passwords

    email = normalise_email(email)
    check_password_policy(password)
    password_hash = passwords().hash(password)
    try:
        with write_transaction():
            user = User.create(partner=None, email=email, password_hash=password_hash, role=OPERATOR)
            audit.record("operator.created", user=user, actor="cli", target=email)
    except peewee.IntegrityError:
        raise Conflict("An account with this email already exists; an operator needs an email of their own.",
                       code="account_exists", field="email") from None
    return user


def _operator_users():
    """Users who are operators (`User.is_operator`, as a query)."""
    return User.select().where((User.role == OPERATOR) & User.partner.is_null())


def all_operators() -> list[User]:
    """Every operator, oldest first."""
    return list(_operator_users().order_by(User.id))


def remove_operator(email: str) -> User:
    """Take an operator's access away (someone left the team): the user goes, and with it
    their sessions (a signed-in browser is signed out on its next request), recovery codes
    and reset links; the removal is audited. NotFound when no operator has this email: a
    partner's user is never removed here (their team removes them)."""
    from portal.domain.accounts import normalise_email

    email = normalise_email(email)
    with write_transaction():
        user = _operator_users().where(User.email == email).first()
        if user is None:
            raise NotFound(f"No operator has the email {email}.", code="no_such_operator")
        audit.record("operator.removed", actor="cli", target=email)
        User.delete().where(User.id == user.id).execute()
    return user


# -- what operators see ------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerRow:
    """One partner as the operator console lists it: metadata and counts only."""

    id: int
    name: str
    owner_email: str
    created_at: datetime
    status: str
    applications: int
    active_keys: int
    requests_7d: int  # signed /v1 calls in the last 7 days (portal.domain.request_log)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


def requests_in_last_week() -> dict[int, int]:
    """Signed /v1 calls per partner in the last 7 days (by day, from the request log's
    day counts: `portal.domain.request_log.counts_by_account`)."""
    from portal.domain.request_log import counts_by_account

    return counts_by_account(utcnow() - timedelta(days=7))


def _search_condition(search: str):
    pattern = f"%{search.lower()}%"
    by_email = User.select(User.partner).where(User.partner.is_null(False) & (peewee.fn.LOWER(User.email) ** pattern))
    return (peewee.fn.LOWER(Partner.name) ** pattern) | Partner.id.in_(by_email)


def partner_rows(search: str = "", *, status: str = "", partner_ids: list[int] | None = None) -> list[PartnerRow]:
    """Partners, newest first, whose business name or a user's email contains `search`
    (case-insensitive), of one `status` when given (a key of STATUS_LABELS); at most
    PARTNERS_SHOWN."""
    search = " ".join((search or "").split())[:SEARCH_MAX]
    query = Partner.select().order_by(Partner.created_at.desc(), Partner.id.desc()).limit(PARTNERS_SHOWN)
    if search:
        query = query.where(_search_condition(search))
    if status in STATUS_LABELS:
        query = query.where(Partner.status == status)
    if partner_ids is not None:
        query = query.where(Partner.id.in_(partner_ids))
    partners = list(query)
    ids = [p.id for p in partners]
    if not ids:
        return []
    owners: dict[int, str] = {}
    for partner_id, email in (User.select(User.partner, User.email)
                              .where(User.partner.in_(ids) & (User.role == "owner"))
                              .order_by(User.id.desc()).tuples()):
        owners[partner_id] = email  # the first owner (lowest id) wins: rows come newest first
    apps = dict(Application.select(Application.partner, peewee.fn.COUNT(Application.id))
                .where(Application.partner.in_(ids)).group_by(Application.partner).tuples())
    now = utcnow()
    keys = dict(ApiKey.select(Application.partner, peewee.fn.COUNT(ApiKey.id)).join(Application)
                .where(Application.partner.in_(ids) & ApiKey.revoked_at.is_null()
                       & (ApiKey.expires_at.is_null() | (ApiKey.expires_at > now)))
                .group_by(Application.partner).tuples())
    requests = requests_in_last_week()
    return [PartnerRow(id=p.id, name=p.name, owner_email=owners.get(p.id, ""), created_at=p.created_at,
                       status=p.status, applications=apps.get(p.id, 0), active_keys=keys.get(p.id, 0),
                       requests_7d=requests.get(p.id, 0))
            for p in partners]


def waiting_count() -> int:
    """How many partners wait for an operator's approval."""
    return Partner.select().where(Partner.status == "pending").count()


def partner_overview(partner_id) -> tuple[PartnerRow, list[User], list[Application]]:
    """One partner for its console page: its row, its users (emails and roles) and its
    applications (names and dates). NotFound for an unknown id."""
    partner_id = row_id(partner_id) or 0
    rows = partner_rows(partner_ids=[partner_id])
    if not rows:
        raise NotFound("There is no partner with this id.", code="partner_missing")
    users = list(User.select(User.email, User.role, User.created_at, User.last_login_at)
                 .where(User.partner == partner_id).order_by(User.id))
    applications = list(Application.select(Application.name, Application.status, Application.created_at)
                        .where(Application.partner == partner_id).order_by(Application.id))
    return rows[0], users, applications


def partner_audit_events(partner_id, limit: int = audit.PAGE_SIZE) -> list[AuditEvent]:
    """The newest entries of a partner's audit log (operator actions included)."""
    return audit.events_of(partner_id, limit=limit)


# -- what operators do -------------------------------------------------------------------


def change_partner_status(partner_id, action: str, *, by: User) -> Partner:
    """Approve, suspend or reactivate a partner (`action`, a key of TRANSITIONS), from the
    status the operator saw; the change and its audit entry commit together.

    Invalid for an unknown action, NotFound for an unknown partner, Conflict when the
    partner's status does not allow it (e.g. suspending a suspended partner)."""
    if action not in TRANSITIONS:
        raise Invalid("Choose approve, suspend or reactivate.", field="action")
    if by is None or not by.is_operator:
        raise Invalid("Only an operator changes a partner's status.", field="action")
    starts, result, audit_action, done = TRANSITIONS[action]
    with write_transaction():
        partner = Partner.get_or_none(Partner.id == partner_id)
        if partner is None:
            raise NotFound("There is no partner with this id.", code="partner_missing")
        changed = (Partner.update(status=result)
                   .where((Partner.id == partner.id) & Partner.status.in_(starts)).execute())
        if not changed:
            now = Partner.get_by_id(partner.id).status
            raise Conflict(f"{partner.name} is {STATUS_LABELS.get(now, now).lower()}: it cannot be {done} now. "
                           "Reload the page to see its current status.", code="partner_status")
        audit.record(audit_action, partner=partner.id, user=by, actor=by.email, target=partner.name,
                     detail=f"operator action: {STATUS_LABELS[partner.status]} → {STATUS_LABELS[result]}")
    return Partner.get_by_id(partner.id)
