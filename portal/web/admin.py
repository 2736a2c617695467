"""The Operator area (/admin, DESIGN.md §14): for the platform's operators only
(ROUTE_ROLES level OPERATOR; partners of any role get 403, and operators get 403 on
partner pages).

The partners table with a search field (swapped over htmx, a plain GET form without
JavaScript), and a partner's page: metadata, "Approve" (LOYALTY_SIGNUP=approval),
"Suspend partner" / "Reactivate partner", and the partner's audit log. Each button asks
for confirmation: htmx's dialog sends `confirmed=1`; without JavaScript a page of its
own asks first. The rules are portal.domain.operators'.
"""

from __future__ import annotations

from flask import Blueprint, flash, render_template, request, url_for
from flask_login import current_user

from portal.domain import Conflict, DomainError
from portal.domain.operators import (
    SEARCH_MAX,
    STATUS_LABELS,
    change_partner_status,
    partner_audit_events,
    partner_overview,
    partner_rows,
    waiting_count,
)
from portal.domain.roles import ROLE_LABELS
from portal.web import is_htmx, render_partial, see_other

bp = Blueprint("admin", __name__, url_prefix="/admin")

CONFIRM = {
    "approve": ("Approve", "Approve {name}? Its users can then use the portal and its API keys start working."),
    "suspend": ("Suspend partner", "Suspend {name}? Every API key of it answers 403 account_disabled from the "
                "next call on, and its users can change nothing until it is reactivated."),
    "reactivate": ("Reactivate partner", "Reactivate {name}? Its API keys work again from the next call on."),
}


@bp.get("/")
def index():
    """The partners, newest first, with a search by business name or user email and a
    status filter."""
    search = request.args.get("q", "")[:SEARCH_MAX]
    status = request.args.get("status", "")
    status = status if status in STATUS_LABELS else ""
    context = {"rows": partner_rows(search, status=status), "search": search, "status": status,
               "status_labels": STATUS_LABELS, "waiting": waiting_count()}
    if is_htmx():
        return render_partial("admin/_partners.html", **context)
    return render_template("admin/index.html", **context)


def _partner_context(partner_id) -> dict:
    row, users, applications = partner_overview(partner_id)
    return {"partner": row, "users": users, "applications": applications,
            "events": partner_audit_events(row.id), "confirm": CONFIRM, "role_labels": ROLE_LABELS}


@bp.get("/partners/<int:partner_id>")
def partner(partner_id):
    """One partner: metadata, the status buttons and its audit log."""
    return render_template("admin/partner.html", **_partner_context(partner_id))


def _change(partner_id, action: str):
    """Ask first (a page of its own without JavaScript), then change the status."""
    if request.form.get("confirmed") != "1":
        context = _partner_context(partner_id)
        label, question = CONFIRM[action]
        return render_template("admin/confirm.html", action=action, label=label,
                               question=question.format(name=context["partner"].name), **context)
    status = 200
    try:
        changed = change_partner_status(partner_id, action, by=current_user._get_current_object())
    except Conflict as exc:
        flash(exc.message, "error")
        status = 409
    except DomainError as exc:
        if exc.kind == "not_found":
            raise
        flash(exc.message, "error")
        status = 422
    else:
        flash(f"{changed.name} is {STATUS_LABELS[changed.status].lower()}.", "success")
    if is_htmx():
        return render_partial("admin/_partner.html", **_partner_context(partner_id)), status
    return see_other(url_for("admin.partner", partner_id=partner_id))


@bp.post("/partners/<int:partner_id>/approve")
def approve(partner_id):
    """Approve a partner waiting for approval (LOYALTY_SIGNUP=approval)."""
    return _change(partner_id, "approve")


@bp.post("/partners/<int:partner_id>/suspend")
def suspend(partner_id):
    """Suspend a partner: its keys answer 403 account_disabled from the next call on."""
    return _change(partner_id, "suspend")


@bp.post("/partners/<int:partner_id>/reactivate")
def reactivate(partner_id):
    """Reactivate a suspended partner."""
    return _change(partner_id, "reactivate")
