"""Every portal route and the least role that may use it, enforced before the view runs.

`ROUTE_ROLES` is the one table: an endpoint is `PUBLIC` (no log-in), or the least role
(portal.domain.roles) a signed-in user needs. A route missing from the table is refused
for everyone (tests/web/test_permissions.py fails first, so a new route cannot be added
without its rule). Where the rule depends on what is submitted (a test key is a
developer's, a production key an admin's), the view adds `require(action)` for it.

A forbidden action answers 403 with a page that says which role it needs; the pages only
hide the controls a role may not use (`can` in templates).
"""

from __future__ import annotations

from flask import request
from flask_login import current_user

from portal.domain.accounts import SUSPENDED, is_suspended
from portal.domain.roles import ACTIONS, ROLE_LABELS, at_least, can
from portal.logs import get_logger

log = get_logger(__name__)

PUBLIC = "public"

ROUTE_ROLES: dict[str, str] = {
    # served to anyone
    "static": PUBLIC,
    "htmx_static": PUBLIC,
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "auth.signup": PUBLIC,
    "auth.login": PUBLIC,
    "auth.two_factor": PUBLIC,  # only after a correct password (a marker in the session)
    "auth.forgot_password": PUBLIC,
    "auth.reset": PUBLIC,  # only with a live reset link
    "team.join": PUBLIC,  # only with a live invite link
    "docs.api": PUBLIC,
    # the SDK: partners' developers and their CI fetch it with pip, without a log-in
    "sdk.index": PUBLIC,
    "sdk.readme": PUBLIC,
    "sdk.wheel": PUBLIC,
    # any signed-in user
    "auth.logout": "viewer",
    "home.index": "viewer",
    "docs.guide": "viewer",
    "developer.applications": "viewer",
    "developer.application": "viewer",
    "developer.keys": "viewer",
    "developer.key_row": "viewer",
    "team.index": "viewer",
    # the request log: every teammate may read it; Compare changes nothing
    "request_log.index": "viewer",
    "request_log.show": "viewer",
    "request_log.compare": "viewer",
    # one's own account: password, two-factor, sessions
    "account.index": "viewer",
    "account.change_password": "viewer",
    "account.setup_two_factor": "viewer",
    "account.cancel_two_factor_setup": "viewer",
    "account.turn_on_two_factor": "viewer",
    "account.turn_off_two_factor": "viewer",
    "account.replace_recovery_codes": "viewer",
    "account.log_out_everywhere": "viewer",
    # keys: developers manage test keys; the view requires admin for production ones
    "developer.new_key": "developer",
    "developer.create_key": "developer",
    "developer.roll_form": "developer",
    "developer.roll_key": "developer",
    "developer.revoke_key": "developer",
    # applications and their secrets
    "developer.new_application": "admin",
    "developer.create_app": "admin",
    "developer.regenerate_app_secret": "admin",
    # the team: admins manage admins, developers and viewers; the views require an owner
    # for changing an owner or making one
    "team.invite_form": "admin",
    "team.send_invite": "admin",
    "team.withdraw_invite": "admin",
    "team.save_role": "admin",
    "team.remove": "admin",
    "audit.index": "admin",
    "audit.download": "admin",
    # the program
    "program.index": "admin",
    "program.save_settings": "admin",
    "program.create_card": "admin",
    "program.update_card": "admin",
    "program.delete_card": "admin",
    "program.create_reward": "admin",
    "program.update_reward": "admin",
    "program.delete_reward": "admin",
    # webhooks: developers see them and manage test-mode ones; the views require admin for
    # production endpoints (webhook_action)
    "webhooks.new_endpoint": "developer",
    "webhooks.create_endpoint": "developer",
    "webhooks.endpoint": "developer",
    "webhooks.send_test": "developer",
    "webhooks.rotate_secret": "developer",
    "webhooks.set_enabled": "developer",
    "webhooks.delete_endpoint": "developer",
    "webhooks.resend": "developer",
    "webhooks.delivery": "developer",
}


class Forbidden(Exception):
    """The signed-in user's role does not allow this; `needed` is the least role that does
    (None for a route without a rule, which nobody may use)."""

    def __init__(self, needed: str | None):
        super().__init__(needed)
        self.needed = needed

    @property
    def message(self) -> str:
        if self.needed is None:
            return "This page is not available."
        role = ROLE_LABELS.get(getattr(current_user, "role", ""), "your role")
        return (f"Your role ({role}) does not allow this: it needs {ROLE_LABELS[self.needed]} or above. "
                "Ask an owner or admin of your team.")


def least_role_for(endpoint: str | None) -> str | None:
    """The rule of a portal endpoint, or None when it has none (refused)."""
    return ROUTE_ROLES.get(endpoint or "")


def require(action: str) -> None:
    """Raise Forbidden unless the signed-in user may take `action` (portal.domain.roles)."""
    if not can(current_user.role, action):
        raise Forbidden(ACTIONS[action])


def allowed(action: str) -> bool:
    """For templates: show a control only when its action is allowed."""
    return bool(current_user and current_user.is_authenticated and can(current_user.role, action))


def check_route():
    """Before a portal view: log-in and role as ROUTE_ROLES says (None lets the view run)."""
    from portal.web import unauthorized_response

    needed = least_role_for(request.endpoint)
    if needed == PUBLIC:
        return None
    if needed is None:
        if request.routing_exception is not None:
            return None  # a 404/405: the error page answers it
        log.error("portal route %s has no rule in ROUTE_ROLES: refused", request.endpoint)
        raise Forbidden(None)
    if not current_user.is_authenticated:
        return unauthorized_response()
    if request.endpoint != "auth.logout" and is_suspended(current_user):
        # The suspension rule: every page says why and nothing can be changed; log-out works.
        from portal.web import error_response

        return error_response(403, SUSPENDED)
    if not at_least(current_user.role, needed):
        raise Forbidden(needed)
    return None
