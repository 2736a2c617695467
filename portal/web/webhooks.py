"""Webhooks in the portal (DESIGN.md §12): an application's endpoints, the "Add endpoint"
form, an endpoint's page (send a test event, rotate its secret, disable, enable, delete,
its deliveries with "Resend") and a delivery's page with its attempts.

Developers see every endpoint and manage test-mode ones; admins manage production ones
too (`webhook_action`, DESIGN.md §10). A signing secret is shown once, in the response
that made it, with `Cache-Control: no-store`. Forms post to the same URLs with or without
htmx; htmx swaps the page's main area, without JavaScript a 303 leads back.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from flask_login import current_user

from portal.domain import DomainError, webhooks
from portal.domain.events import EVENT_TYPES
from portal.domain.roles import webhook_action
from portal.models import utcnow
from portal.web import is_htmx, no_store, owned_app_or_404, render_partial, see_other
from portal.web.permissions import allowed, require

bp = Blueprint("webhooks", __name__)

URL_FIELD_LIMIT = 4096  # raw form length refused before the domain's own rule


def _me():
    return current_user._get_current_object()


def _endpoint_or_404(application, endpoint_id):
    endpoint = webhooks.owned_endpoint(application, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


def _endpoint_to_change(app_id, endpoint_id):
    """The caller's application and its endpoint (404 for anyone else's), once the
    caller's role may change endpoints of that mode (403 otherwise)."""
    application = owned_app_or_404(app_id)
    endpoint = _endpoint_or_404(application, endpoint_id)
    require(webhook_action(endpoint.mode))
    return application, endpoint


def _main(template: str, status: int = 200, **context):
    """The page's main area for htmx, the whole page without JavaScript."""
    if is_htmx():
        return make_response(render_partial(f"webhooks/_{template}.html", **context), 200)
    return make_response(render_template(f"webhooks/{template}.html", **context), status)


def _endpoint_page(application, endpoint, status: int = 200, **extra):
    context = {"application": application, "endpoint": endpoint,
               "deliveries": webhooks.deliveries_of(endpoint), "new_secret": None,
               "may_manage": allowed(webhook_action(endpoint.mode)), "now": utcnow()}
    context.update(extra)
    return _main("endpoint", status, **context)


def _after_change(application, endpoint):
    """After a change: the endpoint's page (htmx) or a 303 to it."""
    if is_htmx():
        return _endpoint_page(application, webhooks.owned_endpoint(application, endpoint.public_id))
    return see_other(url_for("webhooks.endpoint", app_id=application.app_id, endpoint_id=endpoint.public_id))


@bp.get("/developer/apps/<app_id>/webhooks/new")
def new_endpoint(app_id):
    """The "Add endpoint" form."""
    application = owned_app_or_404(app_id)
    require("webhooks.manage.test")
    return _main("new_endpoint", application=application, event_types=EVENT_TYPES, form={"mode": "test"},
                 error=None, may_prod=allowed("webhooks.manage.prod"))


@bp.post("/developer/apps/<app_id>/webhooks")
def create_endpoint(app_id):
    """Add an endpoint; its signing secret appears in this response only."""
    application = owned_app_or_404(app_id)
    form = {"url": request.form.get("url", "")[:URL_FIELD_LIMIT], "description": request.form.get("description", ""),
            "mode": request.form.get("mode", ""), "event_types": request.form.getlist("event_types")}
    if form["mode"] in ("test", "prod"):
        require(webhook_action(form["mode"]))
    else:
        require("webhooks.manage.test")
    try:
        if len(request.form.get("url", "")) > URL_FIELD_LIMIT:
            raise webhooks.Invalid("The URL is too long.", field="url")
        endpoint, secret = webhooks.create_endpoint(
            application, url=form["url"], description=form["description"][:1000], mode=form["mode"],
            event_types=form["event_types"], by=_me())
    except DomainError as exc:
        return _main("new_endpoint", 422, application=application, event_types=EVENT_TYPES, form=form,
                     error=exc.message, error_field=exc.field, may_prod=allowed("webhooks.manage.prod"))
    flash("Endpoint added. Copy its signing secret now: it is shown only once.", "success")
    endpoint.application = application
    response = _endpoint_page(application, endpoint, new_secret=secret)
    if is_htmx():  # the address bar shows the endpoint's page (htmx keeps no history copy of it)
        response.headers["HX-Push-Url"] = url_for("webhooks.endpoint", app_id=application.app_id,
                                                  endpoint_id=endpoint.public_id)
    return no_store(response)


@bp.get("/developer/apps/<app_id>/webhooks/<endpoint_id>")
def endpoint(app_id, endpoint_id):
    """An endpoint: its settings, the actions, its latest deliveries."""
    application = owned_app_or_404(app_id)
    require("webhooks.view")
    return _endpoint_page(application, _endpoint_or_404(application, endpoint_id))


@bp.post("/developer/apps/<app_id>/webhooks/<endpoint_id>/test")
def send_test(app_id, endpoint_id):
    """Queue a `webhook.test` event for this endpoint."""
    application, endpoint = _endpoint_to_change(app_id, endpoint_id)
    webhooks.send_test_event(endpoint, by=_me())
    flash("Test event queued: it appears under Deliveries within a few seconds." if endpoint.enabled
          else "Test event queued: it goes out when you enable the endpoint.", "success")
    return _after_change(application, endpoint)


@bp.post("/developer/apps/<app_id>/webhooks/<endpoint_id>/rotate")
def rotate_secret(app_id, endpoint_id):
    """A new signing secret, shown once; the previous one keeps signing for 24 hours."""
    application, endpoint = _endpoint_to_change(app_id, endpoint_id)
    secret = webhooks.rotate_secret(endpoint, by=_me())
    flash("New signing secret created. Both secrets sign every delivery for the next 24 hours.", "success")
    return no_store(_endpoint_page(application, webhooks.owned_endpoint(application, endpoint.public_id),
                                   new_secret=secret))


@bp.post("/developer/apps/<app_id>/webhooks/<endpoint_id>/enabled")
def set_enabled(app_id, endpoint_id):
    """Disable or enable (`enabled=1`) the endpoint."""
    application, endpoint = _endpoint_to_change(app_id, endpoint_id)
    enable = request.form.get("enabled") == "1"
    webhooks.set_enabled(endpoint, enable, by=_me())
    flash("Endpoint enabled: waiting deliveries go out now." if enable
          else "Endpoint disabled: events wait until you enable it again.", "success")
    return _after_change(application, endpoint)


@bp.post("/developer/apps/<app_id>/webhooks/<endpoint_id>/delete")
def delete_endpoint(app_id, endpoint_id):
    """Delete the endpoint (asked first: a page of its own without JavaScript)."""
    application, endpoint = _endpoint_to_change(app_id, endpoint_id)
    if request.form.get("confirmed") != "1":
        return render_template("webhooks/confirm_delete.html", application=application, endpoint=endpoint)
    webhooks.delete_endpoint(endpoint, by=_me())
    flash(f"Endpoint {endpoint.url} deleted. It receives nothing more.", "success")
    target = url_for("developer.application", app_id=application.app_id) + "#webhooks"
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return see_other(target)


@bp.post("/developer/apps/<app_id>/webhooks/<endpoint_id>/deliveries/<delivery_id>/resend")
def resend(app_id, endpoint_id, delivery_id):
    """Send the delivery's event again (same webhook-id)."""
    application, endpoint = _endpoint_to_change(app_id, endpoint_id)
    delivery = _delivery_or_404(endpoint, delivery_id)
    webhooks.resend(delivery, by=_me())
    flash(f"{delivery.event.type} queued again.", "success")
    return _after_change(application, endpoint)


@bp.get("/developer/apps/<app_id>/webhooks/<endpoint_id>/deliveries/<delivery_id>")
def delivery(app_id, endpoint_id, delivery_id):
    """A delivery: the request body and every attempt's status, latency and response."""
    application = owned_app_or_404(app_id)
    require("webhooks.view")
    endpoint = _endpoint_or_404(application, endpoint_id)
    found = _delivery_or_404(endpoint, delivery_id)
    return _main("delivery", application=application, endpoint=endpoint, delivery=found,
                 attempts=webhooks.attempts_of(found), body=_pretty(found.event.body),
                 may_manage=allowed(webhook_action(endpoint.mode)))


def _delivery_or_404(endpoint, delivery_id):
    try:
        return webhooks.owned_delivery(endpoint, delivery_id)
    except DomainError:
        abort(404)


def _pretty(body: str) -> str:
    import json

    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body
