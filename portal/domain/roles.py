"""Who in a partner's team may do what (DESIGN.md §10).

Every user of a partner account has one role. Roles are ordered (a higher role may do
everything a lower one may), and each action names the least role that may take it:

| role        | may                                                                        |
|-------------|----------------------------------------------------------------------------|
| `owner`     | everything, including the team and other owners                            |
| `admin`     | applications, secrets, every key, webhooks, program, request log, audit    |
|             | log; invite and manage admins, developers and viewers                      |
| `developer` | see applications; create, roll and revoke test keys; test-mode webhooks;   |
|             | request log                                                                |
| `viewer`    | see applications, key metadata (never a secret), request log; change nothing |

The portal enforces these on the server for every route (portal.web.permissions) and only
reflects them in what it shows.
"""

from __future__ import annotations

from portal.domain import Invalid

ROLES = ("owner", "admin", "developer", "viewer")
ROLE_LABELS = {"owner": "Owner", "admin": "Admin", "developer": "Developer", "viewer": "Viewer"}
# An operator runs the platform (DESIGN.md §14). It is not a partner role and ranks below
# every one of them, so no partner action or partner page admits an operator.
OPERATOR = "operator"
_RANK = {"viewer": 1, "developer": 2, "admin": 3, "owner": 4}

# Action -> the least role that may take it. Names read "<subject>.<verb>".
ACTIONS: dict[str, str] = {
    "applications.view": "viewer",       # applications, App IDs, key metadata
    "applications.manage": "admin",      # create applications, regenerate App Secrets
    "keys.manage.test": "developer",     # create, roll, revoke test-mode keys
    "keys.manage.prod": "admin",         # the same for production keys
    "keys.rate_limit": "admin",          # set a key's lower requests-per-minute limit
    "webhooks.view": "developer",
    "webhooks.manage.test": "developer",
    "webhooks.manage.prod": "admin",
    "request_log.view": "viewer",
    "program.manage": "admin",           # cards, rewards, currency, referral rule
    "audit_log.view": "admin",
    "team.view": "viewer",               # who is on the team, with their roles
    "team.manage": "admin",              # invite, change roles, remove (owners: owners only)
    "account.manage": "viewer",          # one's own password, 2FA and sessions
}


def check_role(role: str) -> str:
    """`role` if it is one of ROLES; Invalid otherwise."""
    if role not in _RANK:
        raise Invalid("Choose a role: Owner, Admin, Developer or Viewer.", field="role")
    return role


def at_least(role: str | None, least: str) -> bool:
    """True when `role` ranks at or above `least` (an unknown role ranks below all)."""
    return _RANK.get(role or "", 0) >= _RANK[least]


def can(role: str | None, action: str) -> bool:
    """May a user with `role` take `action` (a key of ACTIONS)?"""
    return at_least(role, ACTIONS[action])


def key_action(mode: str) -> str:
    """The action that manages keys of `mode` (test keys are a developer's, prod an admin's)."""
    return "keys.manage.prod" if mode == "prod" else "keys.manage.test"


def webhook_action(mode: str) -> str:
    """The action that manages webhook endpoints of `mode`."""
    return "webhooks.manage.prod" if mode == "prod" else "webhooks.manage.test"


def may_manage(actor_role: str, target_role: str) -> bool:
    """May `actor_role` change or remove a teammate who has `target_role` (or give someone
    that role)? Owners manage everyone; admins manage admins, developers and viewers."""
    if not can(actor_role, "team.manage"):
        return False
    return actor_role == "owner" or target_role != "owner"
