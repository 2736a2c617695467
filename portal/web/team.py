"""The Team area: who is on the partner's team with which role, invites, role changes and
removal (DESIGN.md §10), and the public page where an invitee joins.

Every member sees the team; owners and admins manage it (ROUTE_ROLES), and the views add
what depends on the person being changed: only an owner changes an owner or makes one
(`may_manage`). The invite link is rendered once, in the response that made it, with
`Cache-Control: no-store`. Without JavaScript "Remove" asks on a page of its own; with
htmx the browser's confirmation dialog asks and the form sends `confirmed=1`.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from flask_login import current_user

from portal.domain import Conflict, DomainError, Invalid, NotFound
from portal.domain.roles import ROLE_LABELS, ROLES, may_manage
from portal.domain.team import (
    INVITE_ROLES,
    accept_invite,
    cancel_invite,
    change_role,
    email_invite,
    invite_for_token,
    invite_teammate,
    members_of,
    pending_invites,
    remove_teammate,
    teammate,
)
from portal.mail import MailError, mail_configured
from portal.models import utcnow
from portal.web import begin_session, is_htmx, no_store, render_partial, see_other
from portal.web.auth import external_url, link_problem
from portal.web.permissions import Forbidden

bp = Blueprint("team", __name__)

PASSWORD_FIELD_LIMIT = 1024
EMAIL_FIELD_LIMIT = 320


def _me():
    return current_user._get_current_object()


def roles_i_may_give(role_of_target: str | None = None) -> list[str]:
    """The roles the signed-in user may give (to someone who now has `role_of_target`)."""
    me = current_user.role
    if role_of_target is not None and not may_manage(me, role_of_target):
        return []
    return [role for role in ROLES if may_manage(me, role)]


def _context(**extra) -> dict:
    partner = current_user.partner
    context = {
        "members": members_of(partner),
        "invites": pending_invites(partner),
        "role_labels": ROLE_LABELS,
        "invite_roles": [r for r in INVITE_ROLES if may_manage(current_user.role, r)],
        "roles_i_may_give": roles_i_may_give,
        "may_manage": lambda role: may_manage(current_user.role, role),
        "show_invite_form": False,
        "invite_values": {"email": "", "role": "developer"},
        "invite_errors": {},
        "new_invite": None,
        "now": utcnow(),
    }
    context.update(extra)
    return context


def render_team(status: int = 200, **extra):
    """The whole Team page."""
    return make_response(render_template("team/index.html", **_context(**extra)), status)


def _member_or_404(user_id):
    user = teammate(current_user.partner_id, user_id)
    if user is None:
        abort(404)
    return user


def _members_response(status: int = 200):
    """After a role change or removal: the members table for htmx, the page otherwise."""
    if is_htmx():
        return make_response(render_partial("team/_members.html", **_context()), status)
    return see_other(url_for("team.index"))


@bp.get("/team")
def index():
    """The team: members with their roles, pending invites, and what each role may do."""
    return render_team()


@bp.get("/team/invite")
def invite_form():
    """The "Invite teammate" form: inline for htmx, on the Team page without JavaScript."""
    if is_htmx():
        return render_partial("team/_invite.html", **_context(show_invite_form=True))
    return render_team(show_invite_form=True)


@bp.post("/team/invites")
def send_invite():
    """Invite someone by email with a role; the single-use link appears in this response
    only (and is emailed when mail is configured)."""
    values = {"email": request.form.get("email", "")[:EMAIL_FIELD_LIMIT], "role": request.form.get("role", "")}
    try:
        if values["role"] in ROLES and not may_manage(current_user.role, values["role"]):
            raise Forbidden("owner")
        new = invite_teammate(_me(), values["email"], values["role"])
    except DomainError as exc:
        errors = {exc.field or "email": exc.message}
        if is_htmx():
            return render_partial("team/_invite.html", **_context(show_invite_form=True, invite_values=values,
                                                                  invite_errors=errors))
        return render_team(422, show_invite_form=True, invite_values=values, invite_errors=errors)
    link = external_url("team.join", token=new.token)
    emailed = False
    if mail_configured():
        try:
            email_invite(new.invite, link)
            emailed = True
        except MailError:
            flash("The invite email could not be sent; copy the link below and send it yourself.", "warning")
    label = ROLE_LABELS[new.invite.role]
    flash(f"Invite for {new.invite.email} ({label}) created{' and emailed' if emailed else ''}. "
          "Copy the link now: it is shown only once.", "success")
    invite = {"email": new.invite.email, "role": new.invite.role, "link": link, "emailed": emailed,
              "expires_at": new.invite.expires_at}
    if is_htmx():
        context = _context(new_invite=invite)
        html = render_partial("team/_invite.html", **context)
        html += render_template("team/_pending.html", **context, oob=True)
        return no_store(make_response(html))
    return no_store(render_team(new_invite=invite))


@bp.post("/team/invites/<invite_id>/cancel")
def withdraw_invite(invite_id):
    """Withdraw a pending invite: its link stops working."""
    try:
        invite = cancel_invite(_me(), invite_id)
    except NotFound as exc:
        flash(exc.message, "error")
        status = 404
    except Invalid:
        raise Forbidden("owner") from None
    else:
        flash(f"The invite for {invite.email} was withdrawn; its link no longer works.", "success")
        status = 200
    if is_htmx():
        return make_response(render_partial("team/_pending.html", **_context()), status)
    return see_other(url_for("team.index"))


@bp.post("/team/users/<user_id>/role")
def save_role(user_id):
    """Give a teammate another role (only an owner changes an owner or makes one)."""
    member = _member_or_404(user_id)
    role = request.form.get("role", "")
    if not may_manage(current_user.role, member.role) or (role in ROLES and not may_manage(current_user.role, role)):
        raise Forbidden("owner")
    try:
        changed = change_role(_me(), member.id, role)
    except DomainError as exc:
        flash(exc.message, "error")
        return _members_response(409 if isinstance(exc, Conflict) else 422)
    if changed.role == member.role:
        flash(f"{member.email} is already {ROLE_LABELS[member.role]}; nothing changed.", "info")
    else:
        flash(f"{member.email} is now {ROLE_LABELS[changed.role]}.", "success")
    if changed.id == current_user.id and changed.role != member.role:
        # Your own role changed: the whole page (sidebar, controls) follows it.
        if is_htmx():
            response = make_response("", 200)
            response.headers["HX-Redirect"] = url_for("team.index")
            return response
        return see_other(url_for("team.index"))
    return _members_response()


@bp.post("/team/users/<user_id>/remove")
def remove(user_id):
    """Take a teammate off the team (asks first); their sessions end at once."""
    member = _member_or_404(user_id)
    if not may_manage(current_user.role, member.role):
        raise Forbidden("owner")
    if request.form.get("confirmed") != "1":
        return render_template("team/confirm_remove.html", member=member, role_labels=ROLE_LABELS)
    try:
        removed = remove_teammate(_me(), member.id)
    except DomainError as exc:
        flash(exc.message, "error")
        return _members_response(409 if isinstance(exc, Conflict) else 422)
    flash(f"{removed.email} was removed from the team and signed out everywhere.", "success")
    return _members_response()


# -- joining ----------------------------------------------------------------------------


@bp.route("/invite/<token>", methods=["GET", "POST"])
def join(token):
    """The invite link: choose a password and join the team with the invited role."""
    try:
        invite = invite_for_token(token)
    except (NotFound, Conflict) as exc:
        return link_problem(exc, "This invite cannot be used", forgot=False)
    error = None
    if request.method == "POST":
        try:
            user = accept_invite(token, request.form.get("password", "")[:PASSWORD_FIELD_LIMIT])
        except (NotFound, Conflict) as exc:
            if getattr(exc, "code", "") == "account_exists":
                error = exc.message
            else:
                return link_problem(exc, "This invite cannot be used", forgot=False)
        except Invalid as exc:
            error = exc.message
        else:
            from portal.domain.accounts import record_login

            begin_session(user)
            record_login(user, how="invite")
            flash(f"Welcome to {invite.partner.name}. You joined as {ROLE_LABELS[user.role]}.", "success")
            return see_other(url_for("home.index"))
    response = make_response(render_template("team/join.html", invite=invite, token=token, error=error,
                                             role_labels=ROLE_LABELS), 422 if error else 200)
    response.headers["Cache-Control"] = "no-store"
    return response
