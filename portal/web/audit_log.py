"""The Audit log area (owners and admins): who did what to the partner's account, when
and from where, newest first, filtered by user and action, and downloadable as CSV.

(The module is `audit_log`, not `audit`: `portal.web` already uses the name `audit` for
portal.domain.audit.)
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, make_response, render_template, request
from flask_login import current_user

from portal.domain import audit
from portal.models import utcnow
from portal.web import is_htmx, render_partial

bp = Blueprint("audit", __name__)

CSV_ROW_LIMIT = 100_000
FILTER_LIMIT = 254
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _filters() -> dict:
    before = request.args.get("before", "")
    return {
        "user": request.args.get("user", "")[:FILTER_LIMIT],
        "action": request.args.get("action", "")[:64],
        "before": int(before) if before.isdigit() and len(before) < 19 else None,
    }


@bp.get("/audit")
def index():
    """The audit log, newest first; the filter form swaps the table over htmx and works as
    a plain GET form without JavaScript."""
    partner = current_user.partner_id
    filters = _filters()
    events = audit.events_of(partner, actor=filters["user"], action=filters["action"], before=filters["before"],
                             limit=audit.PAGE_SIZE + 1)
    older = events[audit.PAGE_SIZE - 1].id if len(events) > audit.PAGE_SIZE else None
    context = {
        "events": events[:audit.PAGE_SIZE],
        "older": older,
        "filters": filters,
        "actors": audit.actors_of(partner),
        "actions": audit.actions_of(partner),
    }
    if is_htmx():
        return render_partial("audit/_events.html", **context)
    return render_template("audit/index.html", **context)


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@bp.get("/audit.csv")
def download():
    """The audit log (with the page's filters) as a CSV file."""
    filters = _filters()
    events = audit.events_of(current_user.partner_id, actor=filters["user"], action=filters["action"],
                             limit=CSV_ROW_LIMIT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "user", "action", "target", "detail", "address"])
    for event in events:
        writer.writerow([event.created_at.replace(microsecond=0).isoformat() + "Z", _cell(event.actor),
                         _cell(event.action), _cell(event.target), _cell(event.detail), _cell(event.ip)])
    response = make_response(out.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="audit-log-{utcnow():%Y-%m-%d}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
