"""The Developer area: applications, App Secrets and API keys.

Every change goes through portal.domain.applications; views parse the form, call one domain
function and render. A show-once secret or key is rendered in the POST's own response
(the partial for htmx, the full page without JavaScript) with `Cache-Control: no-store`,
never put into flash() or the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from portal.db import write_transaction
from portal.domain import Conflict, DomainError, Invalid, request_log, webhooks
from portal.domain.applications import (
    DEFAULT_SECRET_GRACE,
    GRACE_LABELS,
    KEY_EXPIRY_CHOICES,
    KEY_EXPIRY_LABELS,
    api_key_json,
    app_secret_json,
    applications_of,
    create_application,
    issue_api_key,
    keys_of,
    live_key_counts,
    owned_api_key,
    regenerate_secret,
    revoke_api_key,
    roll_api_key,
    secret_state,
)
from portal.domain.events import emit, with_event
from portal.domain.guardrails import (
    MAX_ALLOWED_IPS,
    days_left,
    default_rate_limit,
    expiring_soon,
    parse_allowed_ips,
    parse_rate_limit,
    recently_exposed,
    update_guardrails,
)
from portal.domain.roles import can, key_action
from portal.models import MODES, ApiKey, Application, utcnow
from portal.scopes import SCOPES, scope_groups
from portal.web import form_errors, is_htmx, no_store, owned_app_or_404, render_partial, see_other
from portal.web.permissions import require
from portal.web.request_log import usage_chart

bp = Blueprint("developer", __name__)

DEFAULT_ROLL_EXPIRY = "24h"
NAME_FIELD_LIMIT = 200  # raw form length refused before the domain's own 80-char rule


@dataclass
class KeyForm:
    """What the "Create API key" form holds, and its field messages."""

    name: str = ""
    mode: str = "test"
    scopes: list[str] = field(default_factory=list)
    expires: str = "never"
    allowed_ips: str = ""
    rate_limit: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls) -> KeyForm:
        form = request.form
        return cls(
            name=form.get("name", ""), mode=form.get("mode", ""),
            scopes=form.getlist("scopes"), expires=form.get("expires", "never"),
            allowed_ips=form.get("allowed_ips", ""), rate_limit=form.get("rate_limit", ""),
        )


@dataclass
class GuardrailsForm:
    """The key row's "Edit" form: allowed IPs and requests per minute."""

    allowed_ips: str = ""
    rate_limit: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_key(cls, key: ApiKey) -> GuardrailsForm:
        return cls(allowed_ips="\n".join(key.allowed_ip_list), rate_limit=str(key.rate_limit or ""))


GUARDRAIL_FIELD_LIMIT = 4000  # raw "Allowed IPs" length refused before parsing


def parse_guardrails(form, mode: str, errors: dict, *, may_limit: bool, current_limit=None):
    """Check the "Allowed IPs" and "Requests per minute" fields into `errors`; returns
    (AllowedIps or None, rate limit). Only admins may set a limit: others keep `current_limit`."""
    allowed = limit = None
    if len(form.allowed_ips) > GUARDRAIL_FIELD_LIMIT:
        errors["allowed_ips"] = f"Enter at most {MAX_ALLOWED_IPS} addresses or ranges."
    else:
        try:
            allowed = parse_allowed_ips(form.allowed_ips)
        except DomainError as exc:
            errors["allowed_ips"] = exc.message
    if not may_limit:
        return allowed, current_limit
    try:
        limit = parse_rate_limit(form.rate_limit[:40], mode if mode in ("test", "prod") else "test")
    except DomainError as exc:
        errors["rate_limit"] = exc.message
    return allowed, limit


@dataclass
class NewKey:
    """A key just issued: its row and the plaintext, shown in this response only."""

    key: ApiKey
    plaintext: str
    rolled: bool = False


# -- lookups ----------------------------------------------------------------------------


def owned_key_or_404(application: Application, key_id) -> ApiKey:
    """A key of this partner's application, or 404."""
    key = owned_api_key(current_user.partner_id, application, key_id)
    if key is None:
        abort(404)
    return key


# -- rendering --------------------------------------------------------------------------


def _page_context(application: Application, **extra) -> dict:
    context = {
        "application": application,
        "secret": secret_state(application),
        "keys": keys_of(application),
        "now": utcnow(),
        "key_form": None,
        "new_key": None,
        "new_secret": None,
        "rolling_key_id": None,
        "roll_error": None,
        "editing_key_id": None,
        "guardrails_form": None,
        "default_rate_limit": default_rate_limit,
        "days_left": days_left,
        "exposed_keys": recently_exposed(application.partner_id, application),
        "expiring_keys": expiring_soon(application.partner_id, application),
        "scope_groups": scope_groups(),
        "expiry_labels": KEY_EXPIRY_LABELS,
        "grace_labels": GRACE_LABELS,
        "default_grace": DEFAULT_SECRET_GRACE,
        "default_roll_expiry": DEFAULT_ROLL_EXPIRY,
        "base_url": request.host_url.rstrip("/"),
        "usage": usage_chart(application),
        "key_counts": request_log.key_counts(application),
        "webhook_endpoints": webhooks.endpoints_of(application),
    }
    context.update(extra)
    return context


def _oob_clear(element_id: str) -> str:
    """Empty a show-once slot elsewhere on the page, so only one secret is ever on screen.
    (`element_id` is one of our own constant ids, never user input.)"""
    return f'<div id="{element_id}" hx-swap-oob="true"></div>'


def render_application(application: Application, status: int = 200, **extra):
    """The full application page."""
    return make_response(render_template("developer/application.html", **_page_context(application, **extra)), status)


def render_keys_section(application: Application, status: int = 200, **extra):
    """The "API keys" section: a partial for htmx, or the whole application page."""
    context = _page_context(application, **extra)
    if is_htmx():
        html = render_partial("developer/_keys.html", **context)
        if extra.get("new_key"):
            html += _oob_clear("new-secret")
        # htmx swaps 2xx responses; a form with messages is still a normal swap.
        return make_response(html, 200)
    return make_response(render_template("developer/application.html", **context), status)


def render_key_row(application: Application, key: ApiKey, rolling: bool = False,
                   guardrails_form: GuardrailsForm | None = None):
    """One key's row (with its roll form when `rolling`, its edit form with
    `guardrails_form`), for an htmx swap."""
    return render_partial("developer/_key_row.html", key=key, application=application, now=utcnow(),
                          rolling_key_id=key.id if rolling else None, grace_labels=GRACE_LABELS,
                          default_roll_expiry=DEFAULT_ROLL_EXPIRY, roll_error=None,
                          editing_key_id=key.id if guardrails_form else None, guardrails_form=guardrails_form,
                          default_rate_limit=default_rate_limit, days_left=days_left,
                          key_counts=request_log.key_counts(application))


def render_applications(*, show_form: bool = False, name: str = "", error: str | None = None, status: int = 200):
    """The applications page (with the "New application" form open when `show_form`)."""
    partner = current_user.partner_id
    return render_template("developer/applications.html", applications=applications_of(partner),
                           key_counts=live_key_counts(partner), show_form=show_form, form_name=name,
                           form_error=error), status


def shown_once(response):
    """A response that carries a plaintext secret or key."""
    return no_store(response)


# -- applications -----------------------------------------------------------------------


@bp.get("/developer")
def applications():
    """The partner's applications, newest first."""
    return render_applications()


@bp.get("/developer/apps/new")
def new_application():
    """The "New application" form: inline for htmx, as a page without JavaScript."""
    if is_htmx():
        return render_partial("developer/_new_app_form.html", show_form=True, form_name="", form_error=None)
    return render_applications(show_form=True)


@bp.post("/developer/apps")
def create_app():
    """Create an application; its App Secret appears in this response only."""
    name = request.form.get("name", "")
    try:
        if len(name) > NAME_FIELD_LIMIT:
            raise Invalid("The application name is too long (at most 80 characters).", field="name")
        application, plaintext = create_application(current_user.partner, name, by=current_user._get_current_object())
    except DomainError as exc:
        if is_htmx():
            return render_partial("developer/_new_app_form.html", show_form=True,
                                  form_name=name[:NAME_FIELD_LIMIT], form_error=exc.message)
        return render_applications(show_form=True, name=name[:NAME_FIELD_LIMIT], error=exc.message, status=422)
    flash(f"Application “{application.name}” created.", "success")
    context = _page_context(application, new_secret=plaintext)
    if is_htmx():
        # Replace the whole main area with the new application page and show its URL; htmx
        # keeps no history snapshot (historyCacheSize 0), so the secret is not stored.
        response = make_response(render_partial("developer/_application_main.html", **context, with_title=True))
        response.headers["HX-Retarget"] = "#main"
        response.headers["HX-Reswap"] = "innerHTML show:window:top"
        response.headers["HX-Push-Url"] = url_for("developer.application", app_id=application.app_id)
        return shown_once(response)
    return shown_once(make_response(render_template("developer/application.html", **context)))


@bp.get("/developer/apps/<app_id>")
def application(app_id):
    """An application: App ID, App Secret (masked), the SDK snippet and its API keys."""
    return render_application(owned_app_or_404(app_id))


@bp.post("/developer/apps/<app_id>/secret")
def regenerate_app_secret(app_id):
    """Replace the App Secret; the new one appears in this response only, the previous one
    keeps working for the chosen grace period."""
    application = owned_app_or_404(app_id)
    grace = request.form.get("grace", DEFAULT_SECRET_GRACE)
    try:
        plaintext, _ = with_event(
            application, MODES, "app_secret.regenerated",
            lambda: regenerate_secret(application, grace=grace, by=current_user._get_current_object()),
            lambda _secret: app_secret_json(application.app_id, secret_state(application)))
    except DomainError as exc:
        flash(exc.message, "error")
        if is_htmx():
            return render_partial("developer/_secret.html", **_page_context(application))
        return render_application(application, 422)
    if grace == "now":
        flash("New App Secret created. The previous secret stopped working now.", "success")
    else:
        flash(f"New App Secret created. The previous secret keeps working for {GRACE_LABELS[grace]}.", "success")
    context = _page_context(application, new_secret=plaintext)
    if is_htmx():
        html = render_partial("developer/_secret.html", **context) + _oob_clear("new-key")
        return shown_once(make_response(html))
    return shown_once(make_response(render_template("developer/application.html", **context)))


# -- API keys ---------------------------------------------------------------------------


@bp.get("/developer/apps/<app_id>/keys")
def keys(app_id):
    """The "API keys" section (closes the create form)."""
    return render_keys_section(owned_app_or_404(app_id))


@bp.get("/developer/apps/<app_id>/keys/new")
def new_key(app_id):
    """The "Create API key" form."""
    return render_keys_section(owned_app_or_404(app_id), key_form=KeyForm())


@bp.post("/developer/apps/<app_id>/keys")
def create_key(app_id):
    """Issue an API key; its plaintext appears in this response only."""
    application = owned_app_or_404(app_id)
    form = KeyForm.from_request()
    require(key_action(form.mode))
    expires_in = None
    if form.expires not in KEY_EXPIRY_CHOICES:
        form.errors["expires"] = "Choose when the key expires."
    else:
        expires_in = KEY_EXPIRY_CHOICES[form.expires]
    if len(form.name) > NAME_FIELD_LIMIT:
        form.errors["name"] = "The key name is too long (at most 80 characters)."
    allowed, limit = parse_guardrails(form, form.mode, form.errors, may_limit=can(current_user.role, "keys.rate_limit"))
    if not form.errors:
        try:
            (key, plaintext), _ = with_event(
                application, form.mode, "api_key.created",
                lambda: issue_api_key(application, name=form.name, mode=form.mode, scopes=form.scopes,
                                      expires_in=expires_in, by=current_user._get_current_object(),
                                      allowed_ips=allowed.text, rate_limit=limit),
                lambda issued: api_key_json(issued[0], application.app_id))
        except DomainError as exc:
            form.errors.update(form_errors(exc, "name"))
    if form.errors:
        form.allowed_ips = form.allowed_ips[:GUARDRAIL_FIELD_LIMIT]
        form.rate_limit = form.rate_limit[:40]
        form.name = form.name[:NAME_FIELD_LIMIT]
        form.scopes = [s for s in form.scopes if s in SCOPES]
        return render_keys_section(application, 422, key_form=form)
    flash(f"API key “{key.name}” created. Copy it now: it is shown only once.", "success")
    if allowed.note:
        flash(f"Allowed IPs: {allowed.note}", "info")
    return shown_once(render_keys_section(application, new_key=NewKey(key, plaintext)))


@bp.get("/developer/apps/<app_id>/keys/<key_id>")
def key_row(app_id, key_id):
    """One key's row (closes its roll form)."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    if is_htmx():
        return render_key_row(application, key)
    return see_other(url_for("developer.application", app_id=app_id) + f"#key-{key.id}")


@bp.get("/developer/apps/<app_id>/keys/<key_id>/roll")
def roll_form(app_id, key_id):
    """The "Roll" form: when the old key expires, and the "Roll key" button."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    require(key_action(key.mode))
    if is_htmx():
        return render_key_row(application, key, rolling=True)
    return render_application(application, rolling_key_id=key.id)


@bp.post("/developer/apps/<app_id>/keys/<key_id>/roll")
def roll_key(app_id, key_id):
    """Replace a key with one of the same name, mode and scopes; the old key expires as
    chosen. The replacement's plaintext appears in this response only."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    require(key_action(key.mode))
    old_expires = request.form.get("old_expires", "")
    try:
        (new, plaintext), _ = with_event(
            application, key.mode, "api_key.rolled",
            lambda: roll_api_key(key, old_expires=old_expires, by=current_user._get_current_object()),
            lambda issued: api_key_json(issued[0], application.app_id))
    except Conflict as exc:
        flash(exc.message, "error")
        return render_keys_section(application, 409)
    except DomainError as exc:
        return render_keys_section(application, 422, rolling_key_id=key.id, roll_error=exc.message)
    when = "now" if old_expires == "now" else f"in {GRACE_LABELS[old_expires]}"
    flash(f"Key “{new.name}” rolled. Copy the new key now; the old key expires {when}.", "success")
    return shown_once(render_keys_section(application, new_key=NewKey(new, plaintext, rolled=True)))


@bp.post("/developer/apps/<app_id>/keys/<key_id>/revoke")
def revoke_key(app_id, key_id):
    """Revoke a key at once; its row is updated in place."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    require(key_action(key.mode))
    with write_transaction():
        revoked = revoke_api_key(key, by=current_user._get_current_object())
        if revoked:
            emit(application, key.mode, "api_key.revoked", api_key_json(ApiKey.get_by_id(key.id), application.app_id))
    if revoked:
        flash(f"Key “{key.name}” ({key.masked}) revoked. Calls made with it are refused from now on.", "success")
    else:
        flash(f"Key “{key.name}” was already revoked; nothing changed.", "info")
    if is_htmx():
        return render_key_row(application, ApiKey.get_by_id(key.id))
    return see_other(url_for("developer.application", app_id=app_id) + f"#key-{key.id}")


@bp.get("/developer/apps/<app_id>/keys/<key_id>/edit")
def edit_key_form(app_id, key_id):
    """The key row's "Edit" form: its allowed IPs and (for admins) requests per minute."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    require(key_action(key.mode))
    form = GuardrailsForm.of_key(key)
    if is_htmx():
        return render_key_row(application, key, guardrails_form=form)
    return render_application(application, editing_key_id=key.id, guardrails_form=form)


@bp.post("/developer/apps/<app_id>/keys/<key_id>/edit")
def save_key(app_id, key_id):
    """Save a key's allowed IPs and rate limit (audited); they apply from its next call."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    require(key_action(key.mode))
    form = GuardrailsForm(allowed_ips=request.form.get("allowed_ips", ""),
                          rate_limit=request.form.get("rate_limit", ""))
    if not key.is_live_at(utcnow()):
        form.errors["allowed_ips"] = "A revoked or expired key cannot be changed."
    allowed, limit = parse_guardrails(form, key.mode, form.errors, may_limit=can(current_user.role, "keys.rate_limit"),
                                      current_limit=key.rate_limit)
    if form.errors:
        form.allowed_ips = form.allowed_ips[:GUARDRAIL_FIELD_LIMIT]
        form.rate_limit = form.rate_limit[:40]
        if is_htmx():
            return render_key_row(application, key, guardrails_form=form)
        return render_application(application, 422, editing_key_id=key.id, guardrails_form=form)
    key = update_guardrails(key, allowed_ips=allowed.text, rate_limit=limit, by=current_user._get_current_object())
    flash(f"Key “{key.name}” saved: " + (f"allowed from {', '.join(key.allowed_ip_list)}" if key.allowed_ips
                                        else "allowed from anywhere")
          + f", {key.rate_limit or default_rate_limit(key.mode)} requests per minute.", "success")
    if allowed.note:
        flash(f"Allowed IPs: {allowed.note}", "info")
    if is_htmx():
        return render_key_row(application, key)
    return see_other(url_for("developer.application", app_id=app_id) + f"#key-{key.id}")
