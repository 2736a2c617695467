"""The Account area: one's own password, two-factor authentication and sessions
(DESIGN.md §10). Every signed-in user has one, whatever their role.

Recovery codes are rendered once, in the response that made them, with
`Cache-Control: no-store`. A password change starts a fresh session for this browser (and
so a fresh CSRF token), so it answers with a full page load rather than a swap.
"""

from __future__ import annotations

from flask import Blueprint, flash, make_response, render_template, request, url_for
from flask_login import current_user

from portal.domain import Conflict, DomainError, RateLimited, two_factor
from portal.domain.accounts import change_password as change_account_password
from portal.domain.accounts import log_out_everywhere
from portal.domain.sessions import live_session_count
from portal.models import User
from portal.web import begin_session, client_address, end_current_session, is_htmx, no_store, render_partial, see_other

bp = Blueprint("account", __name__, url_prefix="/account")

PASSWORD_FIELD_LIMIT = 1024
CODE_FIELD_LIMIT = 64


def _me() -> User:
    """The signed-in user as stored now (a set-up step may have changed it this request)."""
    return User.get_by_id(current_user.id)


def _two_factor_context(user: User, **extra) -> dict:
    secret = two_factor.pending_secret(user)
    context = {
        "user": user,
        "setup": None,
        "recovery_codes": None,
        "codes_left": two_factor.recovery_codes_left(user) if user.has_two_factor else 0,
        "code_error": None,
    }
    if secret:
        context["setup"] = {"secret": two_factor.grouped(secret),
                            "qr": two_factor.qr_svg(two_factor.provisioning_uri(user, secret))}
    context.update(extra)
    return context


def _context(user: User, **extra) -> dict:
    context = {"password_errors": {}, "sessions": live_session_count(user)}
    context.update(_two_factor_context(user))
    context.update(extra)
    return context


def render_account(status: int = 200, **extra):
    user = _me()
    return make_response(render_template("account/index.html", **_context(user, **extra)), status)


def render_two_factor(status: int = 200, **extra):
    """The two-factor section: a partial for htmx, the whole page otherwise."""
    user = _me()
    if is_htmx():
        return make_response(render_partial("account/_two_factor.html", **_two_factor_context(user, **extra)), status)
    return make_response(render_template("account/index.html", **_context(user, **extra)), status)


def _reload(endpoint: str = "account.index"):
    """A full page load (htmx follows HX-Redirect)."""
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url_for(endpoint)
        return response
    return see_other(url_for(endpoint))


@bp.get("")
def index():
    """Password, two-factor authentication and sessions of the signed-in user."""
    return render_account()


@bp.post("/password")
def change_password():
    """Change the password (the current one first); every other session ends."""
    current = request.form.get("current_password", "")[:PASSWORD_FIELD_LIMIT]
    new = request.form.get("new_password", "")[:PASSWORD_FIELD_LIMIT]
    user = _me()
    try:
        change_account_password(user, current, new, address=client_address())
    except RateLimited as exc:
        response = render_account(429, password_errors={"current_password": exc.message})
        response.headers["Retry-After"] = str(exc.retry_after or 60)
        return response
    except DomainError as exc:
        errors = {exc.field or "new_password": exc.message}
        if is_htmx():
            return render_partial("account/_password.html", password_errors=errors)
        return render_account(422, password_errors=errors)
    begin_session(User.get_by_id(user.id))
    flash("Your password is changed. Every other browser signed in to your account has been logged out.",
          "success")
    return _reload()


@bp.post("/two-factor/setup")
def setup_two_factor():
    """Start setting up two-factor authentication: a new secret, its QR code, and the field
    for the first code."""
    try:
        two_factor.start_setup(_me())
    except Conflict as exc:
        flash(exc.message, "error")
        return render_two_factor(409)
    return no_store(render_two_factor())


@bp.post("/two-factor/cancel")
def cancel_two_factor_setup():
    """Stop a set-up that was not finished (two-factor stays off)."""
    two_factor.cancel_setup(_me())
    flash("Two-factor set-up cancelled; it stays off.", "info")
    if is_htmx():
        return render_two_factor()
    return see_other(url_for("account.index"))


@bp.post("/two-factor/enable")
def turn_on_two_factor():
    """Turn two-factor on with a first code; the ten recovery codes appear in this response
    only."""
    code = request.form.get("code", "")[:CODE_FIELD_LIMIT]
    try:
        codes = two_factor.turn_on(_me(), code)
    except Conflict as exc:
        flash(exc.message, "error")
        return render_two_factor(409)
    except DomainError as exc:
        return no_store(render_two_factor(422, code_error=exc.message))
    flash("Two-factor authentication is on. Save your recovery codes now: they are shown only once.", "success")
    return no_store(render_two_factor(recovery_codes=codes))


@bp.post("/two-factor/disable")
def turn_off_two_factor():
    """Turn two-factor off after a current code (or a recovery code)."""
    try:
        two_factor.turn_off(_me(), request.form.get("code", "")[:CODE_FIELD_LIMIT])
    except DomainError as exc:
        return _code_refused(exc)
    flash("Two-factor authentication is off. Your password alone now signs you in.", "success")
    return render_two_factor()


def _code_refused(exc: DomainError):
    """The two-factor section again, saying why a change asking for a current code was
    refused: too many tries (429, Retry-After), nothing to change (409), a wrong code (422)."""
    if isinstance(exc, RateLimited):
        response = render_two_factor(429, code_error=exc.message)
        response.headers["Retry-After"] = str(exc.retry_after or 60)
        return response
    if isinstance(exc, Conflict):
        flash(exc.message, "info")
        return render_two_factor(409)
    return render_two_factor(422, code_error=exc.message)


@bp.post("/two-factor/recovery-codes")
def replace_recovery_codes():
    """Make ten new recovery codes (after a current code); the old ones stop working."""
    try:
        codes = two_factor.new_recovery_codes(_me(), request.form.get("code", "")[:CODE_FIELD_LIMIT])
    except DomainError as exc:
        return _code_refused(exc)
    flash("New recovery codes made; the old ones no longer work. Save these now: they are shown only once.",
          "success")
    return no_store(render_two_factor(recovery_codes=codes))


@bp.post("/sessions/end", endpoint="log_out_everywhere")
def log_out_everywhere_view():
    """End every session of this user, this browser's too."""
    log_out_everywhere(_me())
    end_current_session()
    flash("You are logged out everywhere: every browser signed in to your account has to log in again.", "info")
    return _reload("auth.login")
