"""Sign-up, log-in (with the two-factor step), log-out and forgotten passwords.

Log-in throttling, two-factor codes and reset links are the domain's
(portal.domain.accounts, .throttle, .two_factor); these views parse, call and render. A
correct password for a user with two-factor on keeps only a short-lived "password
verified" marker in the session — never a signed-in session — until the code is given.
"""

from __future__ import annotations

import hashlib
import time

from flask import Blueprint, flash, make_response, render_template, request, session, url_for
from flask_login import current_user

from portal.config import current_settings
from portal.domain import Conflict, DomainError, Invalid, NotFound, RateLimited, throttle
from portal.domain.accounts import (
    create_partner_account,
    log_in,
    record_login,
    request_password_reset,
    reset_for_token,
    reset_password,
    second_factor,
)
from portal.domain.two_factor import recovery_codes_left
from portal.models import User
from portal.web import begin_session, client_address, end_current_session, form_errors, safe_next, see_other

bp = Blueprint("auth", __name__)

FIELD_LIMITS = {"business_name": 200, "email": 320, "password": 1024}
CODE_FIELD_LIMIT = 64
PENDING_KEY = "pending_2fa"
PENDING_SECONDS = 300  # the code must follow the password within five minutes


def _home() -> str:
    return url_for("home.index")


def external_url(endpoint: str, **values) -> str:
    """An absolute link for an email: LOYALTY_PUBLIC_URL when set (a forged Host header
    cannot then point a reset link elsewhere), else the address this request came to."""
    base = current_settings().public_url
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def throttled(template: str, exc: RateLimited, **context):
    """A page answering 429 with the refusal's message and Retry-After."""
    response = make_response(render_template(template, **context, error=exc.message), 429)
    response.headers["Retry-After"] = str(exc.retry_after or 60)
    return response


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
                throttle.reserve((throttle.SIGNUP_ADDRESS, client_address()))
                user = create_partner_account(values["business_name"], values["email"],
                                              request.form.get("password", ""))
            except RateLimited as exc:
                values = {k: v[:FIELD_LIMITS[k]] for k, v in values.items()}
                return throttled("auth/signup.html", exc, values=values, errors={}, invite_only=invite_only)
            except DomainError as exc:
                errors.update(form_errors(exc, "email"))
            else:
                begin_session(user)
                record_login(user, how="sign-up")
                if user.partner.is_pending:
                    flash(f"Welcome, {user.partner.name}. An operator reviews new accounts before they can be used.",
                          "info")
                else:
                    flash(f"Welcome, {user.partner.name}. Your account is ready.", "success")
                return see_other(_home())
        values = {k: v[:FIELD_LIMITS[k]] for k, v in values.items()}
    status = 422 if errors else 200
    return render_template("auth/signup.html", values=values, errors=errors, invite_only=invite_only), status


def _password_fingerprint(user: User) -> str:
    """Ties the two-factor marker to the password it followed: a reset in between voids it."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _pending_user() -> tuple[User | None, str]:
    """The user whose password was verified a moment ago (None when the marker is missing,
    expired or out of date), and where to go after."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        return None, ""
    user = User.get_or_none(User.id == pending.get("uid"))
    if user is None or not user.has_two_factor or pending.get("pw") != _password_fingerprint(user):
        return None, ""
    return user, safe_next(pending.get("next"), "")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with email and password (then the two-factor code when it is on); go on to
    `next` if it is a page of this site."""
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
            try:
                user = log_in(email, password, address=client_address())
            except RateLimited as exc:
                return throttled("auth/login.html", exc, email=email, next_url=next_url)
            except Invalid as exc:
                error = exc.message
            else:
                if user.has_two_factor:
                    session.pop(PENDING_KEY, None)
                    session[PENDING_KEY] = {"uid": user.id, "until": int(time.time()) + PENDING_SECONDS,
                                            "pw": _password_fingerprint(user), "next": next_url}
                    return see_other(url_for("auth.two_factor"))
                begin_session(user)
                record_login(user)
                return see_other(next_url or _home())
    status = 401 if error else 200
    return render_template("auth/login.html", email=email, error=error, next_url=next_url), status


@bp.route("/login/code", methods=["GET", "POST"])
def two_factor():
    """The second log-in step: a code from the authenticator app, or a recovery code."""
    user, next_url = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        if request.method == "POST":
            flash("That took too long. Log in again.", "info")
        return see_other(url_for("auth.login"))
    error = None
    if request.method == "POST":
        code = request.form.get("code", "")[:CODE_FIELD_LIMIT]
        try:
            user, how = second_factor(user.id, code, address=client_address())
        except RateLimited as exc:
            return throttled("auth/two_factor.html", exc)
        except NotFound:
            session.pop(PENDING_KEY, None)
            return see_other(url_for("auth.login"))
        except Invalid as exc:
            error = exc.message
        else:
            begin_session(user)
            record_login(user, how=f"password and {how}")
            if how == "recovery code":
                left = recovery_codes_left(user)
                flash(f"You used a recovery code; {left} left. Make new ones on your Account page if you are "
                      "running out.", "warning" if left <= 3 else "info")
            return see_other(next_url or _home())
    return render_template("auth/two_factor.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    """End this session: its row is deleted, so the old cookie no longer signs anyone in."""
    end_current_session()
    flash("You are logged out.", "info")
    return see_other(url_for("auth.login"))


# -- forgotten password -------------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link. The answer is the same whether or not the email has an
    account."""
    email = ""
    error = None
    if request.method == "POST":
        email = request.form.get("email", "")[:FIELD_LIMITS["email"]]
        try:
            request_password_reset(email, address=client_address(),
                                   link_for=lambda token: external_url("auth.reset", token=token))
        except RateLimited as exc:
            return throttled("auth/forgot.html", exc, email=email, sent=False)
        except Invalid as exc:
            error = exc.message
        else:
            return see_other(url_for("auth.forgot_password", sent="1"))
    sent = request.method == "GET" and request.args.get("sent") == "1"
    return render_template("auth/forgot.html", email=email, error=error, sent=sent), 422 if error else 200


def link_problem(exc: DomainError, title: str, *, forgot: bool = True):
    """An invite or reset link that cannot be used: why, and what to do instead."""
    status = 404 if isinstance(exc, NotFound) else 410
    return render_template("auth/link_problem.html", title=title, message=exc.message, forgot=forgot), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset(token):
    """Set a new password through a reset link (single-use, one hour)."""
    try:
        reset_row = reset_for_token(token)
    except (NotFound, Conflict) as exc:
        return link_problem(exc, "This reset link cannot be used")
    error = None
    if request.method == "POST":
        try:
            reset_password(token, request.form.get("new_password", "")[:FIELD_LIMITS["password"]])
        except (NotFound, Conflict) as exc:
            return link_problem(exc, "This reset link cannot be used")
        except Invalid as exc:
            error = exc.message
        else:
            if current_user.is_authenticated:
                end_current_session()
            flash("Your new password is set and every session of your account has ended. Log in with it.",
                  "success")
            return see_other(url_for("auth.login"))
    response = make_response(render_template("auth/reset.html", token=token, email=reset_row.user.email,
                                             error=error), 422 if error else 200)
    response.headers["Cache-Control"] = "no-store"
    return response
