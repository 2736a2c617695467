"""Home: the signed-in partner's overview of applications, keys and what to do next."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from portal.domain import request_log
from portal.domain.applications import applications_of, keys_of_partner
from portal.domain.guardrails import days_left, expiring_soon, recently_exposed
from portal.models import utcnow
from portal.web.permissions import waiting_for_approval

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """Applications, live keys by mode, last use, today's API requests and errors, and the
    first steps still to take. (An operator's home is the operator console; a partner
    waiting for approval sees the page that says so.)"""
    if current_user.is_operator:
        return redirect(url_for("admin.index"))
    waiting = waiting_for_approval()
    if waiting is not None:
        return waiting
    partner = current_user.partner
    applications = applications_of(partner)
    now = utcnow()
    keys = keys_of_partner(partner)
    live = [k for k in keys if k.is_live_at(now)]
    used = [k for k in keys if k.last_used_at is not None]
    stats = {
        "applications": len(applications),
        "test_keys": sum(1 for k in live if k.mode == "test"),
        "prod_keys": sum(1 for k in live if k.mode == "prod"),
        "last_used": max((k.last_used_at for k in used), default=None),
    }
    stats["requests_today"], stats["errors_today"] = request_log.today_totals(partner.id)
    steps = [
        ("Create an application", bool(applications)),
        ("Create a test API key", any(k.mode == "test" for k in keys)),
        ("Make a first signed call", bool(used)),
    ]
    return render_template("home/index.html", partner=partner, applications=applications[:5],
                           stats=stats, steps=steps, exposed_keys=recently_exposed(partner),
                           expiring_keys=expiring_soon(partner), days_left=days_left)
