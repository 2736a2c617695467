"""The Developer area: applications, App Secrets and API keys; plus the home page and docs.

Every change goes through portal.applications; views parse the form, call one domain
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
from flask_login import current_user, login_required

from portal.applications import (
    DEFAULT_SECRET_GRACE,
    GRACE_LABELS,
    KEY_EXPIRY_CHOICES,
    KEY_EXPIRY_LABELS,
    CredentialError,
    create_application,
    issue_api_key,
    owned_api_key,
    owned_application,
    regenerate_secret,
    revoke_api_key,
    roll_api_key,
    secret_state,
)
from portal.models import ApiKey, Application, utcnow
from portal.scopes import SCOPES, scope_groups
from portal.web import is_htmx, no_store, render_partial, see_other

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
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls) -> KeyForm:
        form = request.form
        return cls(
            name=form.get("name", ""), mode=form.get("mode", ""),
            scopes=form.getlist("scopes"), expires=form.get("expires", "never"),
        )


@dataclass
class NewKey:
    """A key just issued: its row and the plaintext, shown in this response only."""

    key: ApiKey
    plaintext: str
    rolled: bool = False


# -- lookups ----------------------------------------------------------------------------


def owned_app_or_404(app_id: str) -> Application:
    """The signed-in partner's application, or 404 (another partner's looks like none)."""
    application = owned_application(current_user.partner_id, app_id)
    if application is None:
        abort(404)
    return application


def owned_key_or_404(application: Application, key_id) -> ApiKey:
    """A key of this partner's application, or 404."""
    key = owned_api_key(current_user.partner_id, application, key_id)
    if key is None:
        abort(404)
    return key


def app_keys(application: Application) -> list[ApiKey]:
    return list(ApiKey.select().where(ApiKey.application == application).order_by(ApiKey.id.desc()))


# -- rendering --------------------------------------------------------------------------


def _page_context(application: Application, **extra) -> dict:
    context = {
        "application": application,
        "secret": secret_state(application),
        "keys": app_keys(application),
        "now": utcnow(),
        "key_form": None,
        "new_key": None,
        "new_secret": None,
        "rolling_key_id": None,
        "roll_error": None,
        "scope_groups": scope_groups(),
        "expiry_labels": KEY_EXPIRY_LABELS,
        "grace_labels": GRACE_LABELS,
        "default_grace": DEFAULT_SECRET_GRACE,
        "default_roll_expiry": DEFAULT_ROLL_EXPIRY,
        "base_url": request.host_url.rstrip("/"),
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


def shown_once(response):
    """A response that carries a plaintext secret or key."""
    return no_store(response)


# -- home and docs ----------------------------------------------------------------------


@bp.get("/")
@login_required
def home():
    """The signed-in partner's overview: applications, keys, and what to do next."""
    partner = current_user.partner
    applications = list(Application.select().where(Application.partner == partner).order_by(Application.id.desc()))
    now = utcnow()
    keys = list(
        ApiKey.select().join(Application).where(Application.partner == partner).order_by(ApiKey.id.desc())
    )
    live = [k for k in keys if k.status_at(now) in ("active", "expiring")]
    used = [k for k in keys if k.last_used_at is not None]
    stats = {
        "applications": len(applications),
        "test_keys": sum(1 for k in live if k.mode == "test"),
        "prod_keys": sum(1 for k in live if k.mode == "prod"),
        "last_used": max((k.last_used_at for k in used), default=None),
    }
    steps = [
        ("Create an application", bool(applications)),
        ("Create a test API key", any(k.mode == "test" for k in keys)),
        ("Make a first signed call", bool(used)),
    ]
    return render_template("developer/home.html", partner=partner, applications=applications[:5],
                           stats=stats, steps=steps)


@bp.get("/docs")
@login_required
def docs():
    """Our own guide to credentials, modes, scopes and key rotation."""
    return render_template("docs/credentials.html", scope_groups=scope_groups())


# -- applications -----------------------------------------------------------------------


@bp.get("/developer")
@login_required
def applications():
    """The partner's applications, newest first."""
    apps = list(
        Application.select().where(Application.partner == current_user.partner_id).order_by(Application.id.desc())
    )
    now = utcnow()
    counts = {}
    for key in ApiKey.select().join(Application).where(Application.partner == current_user.partner_id):
        if key.status_at(now) in ("active", "expiring"):
            counts[key.application_id] = counts.get(key.application_id, 0) + 1
    return render_template("developer/applications.html", applications=apps, key_counts=counts,
                           show_form=False, form_name="", form_error=None)


@bp.get("/developer/apps/new")
@login_required
def new_application():
    """The "New application" form: inline for htmx, as a page without JavaScript."""
    if is_htmx():
        return render_partial("developer/_new_app_form.html", show_form=True, form_name="", form_error=None)
    return applications_page_with_form("", None, 200)


def applications_page_with_form(name: str, error: str | None, status: int):
    apps = list(
        Application.select().where(Application.partner == current_user.partner_id).order_by(Application.id.desc())
    )
    return render_template("developer/applications.html", applications=apps, key_counts={},
                           show_form=True, form_name=name, form_error=error), status


@bp.post("/developer/apps")
@login_required
def create_app():
    """Create an application; its App Secret appears in this response only."""
    name = request.form.get("name", "")
    try:
        if len(name) > NAME_FIELD_LIMIT:
            raise CredentialError("The application name is too long (at most 80 characters).", "name")
        application, plaintext = create_application(current_user.partner, name, by=current_user._get_current_object())
    except CredentialError as exc:
        if is_htmx():
            return render_partial("developer/_new_app_form.html", show_form=True,
                                  form_name=name[:NAME_FIELD_LIMIT], form_error=str(exc))
        return applications_page_with_form(name[:NAME_FIELD_LIMIT], str(exc), 422)
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
@login_required
def application(app_id):
    """An application: App ID, App Secret (masked), the SDK snippet and its API keys."""
    return render_application(owned_app_or_404(app_id))


@bp.post("/developer/apps/<app_id>/secret")
@login_required
def regenerate_app_secret(app_id):
    """Replace the App Secret; the new one appears in this response only, the previous one
    keeps working for the chosen grace period."""
    application = owned_app_or_404(app_id)
    grace = request.form.get("grace", DEFAULT_SECRET_GRACE)
    try:
        plaintext = regenerate_secret(application, grace=grace, by=current_user._get_current_object())
    except CredentialError as exc:
        flash(str(exc), "error")
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
@login_required
def keys(app_id):
    """The "API keys" section (closes the create form)."""
    return render_keys_section(owned_app_or_404(app_id))


@bp.get("/developer/apps/<app_id>/keys/new")
@login_required
def new_key(app_id):
    """The "Create API key" form."""
    return render_keys_section(owned_app_or_404(app_id), key_form=KeyForm())


@bp.post("/developer/apps/<app_id>/keys")
@login_required
def create_key(app_id):
    """Issue an API key; its plaintext appears in this response only."""
    application = owned_app_or_404(app_id)
    form = KeyForm.from_request()
    expires_in = None
    if form.expires not in KEY_EXPIRY_CHOICES:
        form.errors["expires"] = "Choose when the key expires."
    else:
        expires_in = KEY_EXPIRY_CHOICES[form.expires]
    if len(form.name) > NAME_FIELD_LIMIT:
        form.errors["name"] = "The key name is too long (at most 80 characters)."
    if not form.errors:
        try:
            key, plaintext = issue_api_key(application, name=form.name, mode=form.mode, scopes=form.scopes,
                                           expires_in=expires_in, by=current_user._get_current_object())
        except CredentialError as exc:
            form.errors[exc.field or "name"] = str(exc)
    if form.errors:
        form.name = form.name[:NAME_FIELD_LIMIT]
        form.scopes = [s for s in form.scopes if s in SCOPES]
        return render_keys_section(application, 422, key_form=form)
    flash(f"API key “{key.name}” created. Copy it now: it is shown only once.", "success")
    return shown_once(render_keys_section(application, new_key=NewKey(key, plaintext)))


@bp.get("/developer/apps/<app_id>/keys/<key_id>")
@login_required
def key_row(app_id, key_id):
    """One key's row (closes its roll form)."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    if is_htmx():
        return render_partial("developer/_key_row.html", key=key, application=application, now=utcnow(),
                              rolling_key_id=None, grace_labels=GRACE_LABELS,
                              default_roll_expiry=DEFAULT_ROLL_EXPIRY, roll_error=None)
    return see_other(url_for("developer.application", app_id=app_id) + f"#key-{key.id}")


@bp.get("/developer/apps/<app_id>/keys/<key_id>/roll")
@login_required
def roll_form(app_id, key_id):
    """The "Roll" form: when the old key expires, and the "Roll key" button."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    if is_htmx():
        return render_partial("developer/_key_row.html", key=key, application=application, now=utcnow(),
                              rolling_key_id=key.id, grace_labels=GRACE_LABELS,
                              default_roll_expiry=DEFAULT_ROLL_EXPIRY, roll_error=None)
    return render_application(application, rolling_key_id=key.id)


@bp.post("/developer/apps/<app_id>/keys/<key_id>/roll")
@login_required
def roll_key(app_id, key_id):
    """Replace a key with one of the same name, mode and scopes; the old key expires as
    chosen. The replacement's plaintext appears in this response only."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    old_expires = request.form.get("old_expires", "")
    try:
        new, plaintext = roll_api_key(key, old_expires=old_expires, by=current_user._get_current_object())
    except CredentialError as exc:
        if exc.field == "old_expires":
            return render_keys_section(application, 422, rolling_key_id=key.id, roll_error=str(exc))
        flash(str(exc), "error")
        return render_keys_section(application, 409)
    when = "now" if old_expires == "now" else f"in {GRACE_LABELS[old_expires]}"
    flash(f"Key “{new.name}” rolled. Copy the new key now; the old key expires {when}.", "success")
    return shown_once(render_keys_section(application, new_key=NewKey(new, plaintext, rolled=True)))


@bp.post("/developer/apps/<app_id>/keys/<key_id>/revoke")
@login_required
def revoke_key(app_id, key_id):
    """Revoke a key at once; its row is updated in place."""
    application = owned_app_or_404(app_id)
    key = owned_key_or_404(application, key_id)
    if revoke_api_key(key, by=current_user._get_current_object()):
        flash(f"Key “{key.name}” ({key.masked}) revoked. Calls made with it are refused from now on.", "success")
    else:
        flash(f"Key “{key.name}” was already revoked; nothing changed.", "info")
    key = ApiKey.get_by_id(key.id)
    if is_htmx():
        return render_partial("developer/_key_row.html", key=key, application=application, now=utcnow(),
                              rolling_key_id=None, grace_labels=GRACE_LABELS,
                              default_roll_expiry=DEFAULT_ROLL_EXPIRY, roll_error=None)
    return see_other(url_for("developer.application", app_id=app_id) + f"#key-{key.id}")
