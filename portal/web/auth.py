"""Sign-up, log-in and log-out."""

from __future__ import annotations

from flask import Blueprint, flash, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.config import current_settings
from portal.domain import DomainError
from portal.domain.accounts import authenticate, create_partner_account
from portal.web import form_errors, rotate_csrf_token, safe_next, see_other

bp = Blueprint("auth", __name__)

FIELD_LIMITS = {"business_name": 200, "email": 320, "password": 1024}


def _home() -> str:
    return url_for("home.index")


def _start_session(user) -> None:
    """Log `user` in on a fresh session (no fixation), with a fresh CSRF token."""
    session.clear()
    login_user(user)
    rotate_csrf_token()


def _oversized(form) -> dict[str, str]:
    """Refuse absurdly long values before they reach the account rules."""
    errors = {}
    for name, limit in FIELD_LIMITS.items():
        if len(form.get(name, "")) > limit:
            errors[name] = f"This value is too long (at most {limit} characters)."
    return errors


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create a partner organisation and its owner, then log the owner in."""
    if current_user.is_authenticated and request.method == "GET":
        return see_other(_home())
    invite_only = current_settings().signup == "invite"
    values = {"business_name": "", "email": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {"business_name": request.form.get("business_name", ""), "email": request.form.get("email", "")}
        errors = _oversized(request.form)
        if not errors:
            try:
                user = create_partner_account(values["business_name"], values["email"],
                                              request.form.get("password", ""))
            except DomainError as exc:
                errors.update(form_errors(exc, "email"))
            else:
                _start_session(user)
                flash(f"Welcome, {user.partner.name}. Your account is ready.", "success")
                return see_other(_home())
        values = {k: v[:FIELD_LIMITS[k]] for k, v in values.items()}
    status = 422 if errors else 200
    return render_template("auth/signup.html", values=values, errors=errors, invite_only=invite_only), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with email and password; go on to `next` if it is a page of this site."""
    next_url = safe_next(request.values.get("next"), "")
    if current_user.is_authenticated and request.method == "GET":
        return see_other(next_url or _home())
    email = ""
    error = None
    if request.method == "POST":
        email = request.form.get("email", "")[:FIELD_LIMITS["email"]]
        password = request.form.get("password", "")
        if _oversized(request.form):
            error = "Email or password is incorrect."
        else:
            user = authenticate(email, password)
            if user is None:
                error = "Email or password is incorrect."
            else:
                _start_session(user)
                return see_other(next_url or _home())
    status = 401 if error else 200
    return render_template("auth/login.html", email=email, error=error, next_url=next_url), status


@bp.post("/logout")
def logout():
    """End the session."""
    logout_user()
    session.clear()
    rotate_csrf_token()
    flash("You are logged out.", "info")
    return see_other(url_for("auth.login"))
