"""The request log of an application (DESIGN.md §11): every /v1 call its keys made, newest
first, with filters (Key, Status, Mode, Endpoint) that swap the table over htmx and work as
a plain GET form without JavaScript, an "Older" link, a "Request ID" lookup, and a page
per request that, for `invalid_signature`, compares the partner's string to sign with the
server's canonical string on the server (no script).

Also the usage chart's geometry (`usage_chart`), which the application page renders as an
SVG from its own template: no chart script, nothing the strict CSP would have to allow.
Everyone on the team may read the log (viewers too); nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user

from portal.domain import request_log
from portal.domain.applications import keys_of
from portal.models import Application, utcnow
from portal.web import is_htmx, owned_app_or_404, render_partial, see_other

bp = Blueprint("request_log", __name__)

STATUS_LABELS = {"": "All", "succeeded": "Succeeded", "failed": "Failed"}
MODE_LABELS = {"": "All", "test": "Test", "prod": "Production"}
COMPARE_LIMIT = 20_000  # characters of a pasted string to sign that are compared


def endpoint_patterns() -> list[str]:
    """Every /v1 route pattern (`/v1/members/{member_id}`), for the Endpoint filter."""
    from portal.api import REGISTRY
    from portal.api.openapi import openapi_path

    return sorted({openapi_path(ep.path) for ep in REGISTRY.values()})


@dataclass
class Filters:
    key: str = ""
    status: str = ""
    mode: str = ""
    route: str = ""  # the Endpoint filter (`endpoint` would clash with url_for's own argument)
    before: str = ""

    def args(self, **changes) -> dict:
        """The query string of these filters (empty ones left out)."""
        values = {"key": self.key, "status": self.status, "mode": self.mode, "route": self.route,
                  "before": self.before, **changes}
        return {name: value for name, value in values.items() if value}

    @property
    def any(self) -> bool:
        return bool(self.key or self.status or self.mode or self.route)


def _filters(keys, endpoints) -> Filters:
    """The filters of the query string; an unknown value is ignored (shown as All)."""
    args = request.args
    key = args.get("key", "")
    status = args.get("status", "")
    mode = args.get("mode", "")
    route = args.get("route", "")
    return Filters(
        key=key if key in {str(k.id) for k in keys} else "",
        status=status if status in STATUS_LABELS else "",
        mode=mode if mode in MODE_LABELS else "",
        route=route if route in endpoints else "",
        before=args.get("before", "")[:60],
    )


@bp.get("/developer/apps/<app_id>/requests")
def index(app_id):
    """The request log, newest first; the filter form swaps the table over htmx. With
    `request_id` it goes straight to that request's page."""
    application = owned_app_or_404(app_id)
    wanted = request.args.get("request_id", "").strip()[:64]
    if wanted:
        found = request_log.find(current_user.partner_id, wanted)
        if found is not None and found.application_id is not None:
            owner = Application.get_or_none(Application.id == found.application_id)
            if owner is not None:
                return see_other(url_for("request_log.show", app_id=owner.app_id, request_id=found.request_id))
    keys = keys_of(application)
    endpoints = endpoint_patterns()
    filters = _filters(keys, endpoints)
    cursor = request_log.Cursor.parse(filters.before)
    if cursor is None:
        filters.before = ""
    page = request_log.page(application, key_id=int(filters.key) if filters.key else None,
                            status=filters.status or None, mode=filters.mode or None,
                            route=filters.route or None, before=cursor)
    context = {
        "application": application,
        "keys": keys,
        "key_names": {k.id: k.name for k in keys},
        "endpoints": endpoints,
        "filters": filters,
        "page": page,
        "status_labels": STATUS_LABELS,
        "mode_labels": MODE_LABELS,
        "wanted": wanted,
        "not_found": bool(wanted),
        "days": _retention_days(),
    }
    if is_htmx():
        return render_partial("request_log/_records.html", **context)
    return render_template("request_log/index.html", **context), 404 if wanted else 200


def _record_or_404(application: Application, request_id: str):
    record = request_log.find(current_user.partner_id, request_id)
    if record is None or record.application_id != application.id:
        abort(404)
    return record


def _show(application: Application, record, comparison=None, pasted: str = ""):
    context = {"application": application, "record": record, "comparison": comparison, "pasted": pasted,
               "key_name": _key_name(application, record)}
    if is_htmx() and comparison is not None:
        return render_partial("request_log/_compare.html", **context)
    return render_template("request_log/show.html", **context)


@bp.get("/developer/apps/<app_id>/requests/<request_id>")
def show(app_id, request_id):
    """One request: every recorded field, the error, and for invalid_signature the
    server's canonical string with the "Compare" form."""
    application = owned_app_or_404(app_id)
    return _show(application, _record_or_404(application, request_id))


@bp.post("/developer/apps/<app_id>/requests/<request_id>/compare")
def compare(app_id, request_id):
    """Compare a pasted string to sign with the server's canonical string (changes nothing)."""
    application = owned_app_or_404(app_id)
    record = _record_or_404(application, request_id)
    if not record.canonical_string:
        abort(404)
    pasted = request.form.get("string_to_sign", "")[:COMPARE_LIMIT]
    comparison = request_log.compare_strings_to_sign(record.canonical_string, pasted)
    return _show(application, record, comparison, pasted)


def _key_name(application: Application, record) -> str | None:
    if record.api_key_id is None:
        return None
    for key in keys_of(application):
        if key.id == record.api_key_id:
            return key.name
    return None


def _retention_days() -> int:
    from portal.config import current_settings

    return current_settings().request_log_days


# -- the usage chart ------------------------------------------------------------------------

CHART_WIDTH = 1400  # viewBox units: 100 per day
CHART_HEIGHT = 200
BAR_WIDTH = 64


@dataclass(frozen=True)
class Bar:
    label: str
    x: int
    succeeded: int
    failed: int
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float


@dataclass(frozen=True)
class UsageChart:
    bars: list
    top: int  # the value the chart's full height stands for
    total: int
    failed: int
    first: str
    last: str


def usage_chart(application: Application) -> UsageChart:
    """The 14-day chart's bars in viewBox units (stacked: succeeded below, failed on top)."""
    days = request_log.daily_counts(application, today=utcnow().date())
    peak = max((d.total for d in days), default=0)
    top = _nice_ceiling(peak)
    bars = []
    slot = CHART_WIDTH // len(days)
    for index, day in enumerate(days):
        ok_height = CHART_HEIGHT * day.succeeded / top
        failed_height = CHART_HEIGHT * day.failed / top
        ok_y = CHART_HEIGHT - ok_height
        bars.append(Bar(label=day.day.strftime("%-d %b"), x=index * slot + (slot - BAR_WIDTH) // 2,
                        succeeded=day.succeeded, failed=day.failed, ok_y=round(ok_y, 2),
                        ok_height=round(ok_height, 2), failed_y=round(ok_y - failed_height, 2),
                        failed_height=round(failed_height, 2)))
    return UsageChart(bars=bars, top=top, total=sum(d.total for d in days), failed=sum(d.failed for d in days),
                      first=bars[0].label, last=bars[-1].label)


def _nice_ceiling(value: int) -> int:
    """A round number at or above `value` for the chart's scale (10, 20, 50, 100 …)."""
    if value <= 10:
        return 10
    step = 1
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor * 10:
                return step * factor * 10
        step *= 10
