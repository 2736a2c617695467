"""The route → least role table: every portal route has a rule, and the rules hold."""

from __future__ import annotations

import pytest
from portal_helpers import count, key_row, teammate

from portal.domain.roles import ACTIONS, ROLES, at_least, can, key_action, may_manage
from portal.models import ApiKey, Application, User
from portal.web.permissions import OPERATOR, PUBLIC, ROUTE_ROLES, SIGNED_IN


def test_every_portal_route_has_a_rule(app):
    portal_endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(portal_endpoints - set(ROUTE_ROLES))
    assert not missing, f"portal routes without a rule in portal.web.permissions.ROUTE_ROLES: {missing}"
    stale = sorted(set(ROUTE_ROLES) - portal_endpoints)
    assert not stale, f"rules for routes that do not exist: {stale}"


def test_every_rule_is_public_signed_in_operator_or_a_role():
    assert set(ROUTE_ROLES.values()) <= {PUBLIC, SIGNED_IN, OPERATOR, *ROLES}


def test_an_operator_may_take_no_partner_action():
    assert not any(can(OPERATOR, action) for action in ACTIONS)
    assert not any(at_least(OPERATOR, role) for role in ROLES)


@pytest.mark.parametrize("role, allowed", [
    ("viewer", {"applications.view", "request_log.view", "team.view", "account.manage"}),
    ("developer", {"applications.view", "request_log.view", "team.view", "account.manage",
                   "keys.manage.test", "webhooks.view", "webhooks.manage.test"}),
    ("admin", set(ACTIONS)),
    ("owner", set(ACTIONS)),
])
def test_each_role_may_do_what_the_design_says(role, allowed):
    assert {action for action in ACTIONS if can(role, action)} == allowed


def test_roles_are_ordered_and_unknown_roles_may_do_nothing():
    assert at_least("owner", "admin") and at_least("admin", "developer") and at_least("developer", "viewer")
    assert not at_least("viewer", "developer")
    assert not any(can(None, action) or can("root", action) for action in ACTIONS)


def test_test_keys_are_a_developers_and_production_keys_an_admins():
    assert can("developer", key_action("test")) and not can("developer", key_action("prod"))
    assert can("admin", key_action("prod"))


def test_admins_manage_everyone_but_owners():
    assert may_manage("owner", "owner") and may_manage("admin", "admin") and may_manage("admin", "viewer")
    assert not may_manage("admin", "owner")
    assert not may_manage("developer", "viewer") and not may_manage("viewer", "viewer")


# -- the rules enforced on real requests --------------------------------------------------


def test_a_viewer_sees_applications_and_keys_but_no_control_that_changes_them(app, org):
    viewer = teammate(app, org, "viewer")[1]
    page = viewer.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert org.app_id in page and "Checkout" in page
    for control in ("Create API key", "Regenerate secret", ">Roll</button>", ">Revoke</button>"):
        assert control not in page
    assert "New application" not in viewer.get("/developer").get_data(as_text=True)
    assert ">Program<" not in viewer.get("/").get_data(as_text=True)


def test_a_viewer_posting_a_change_gets_403_and_nothing_changes(app, org):
    viewer = teammate(app, org, "viewer")[1]
    viewer.get(f"/developer/apps/{org.app_id}")
    response = viewer.post(f"/developer/apps/{org.app_id}/keys/{org.key_id}/revoke")
    assert response.status_code == 403 and "Viewer" in response.get_data(as_text=True)
    assert key_row(app, org.key_id).revoked_at is None
    assert viewer.post("/developer/apps", {"name": "Sneaky"}).status_code == 403
    assert count(app, Application) == 1
    assert viewer.get("/program").status_code == 403


def test_a_developer_manages_test_keys_only(app, org):
    developer = teammate(app, org, "developer")[1]
    page = developer.get(f"/developer/apps/{org.app_id}/keys/new").get_data(as_text=True)
    assert 'value="test"' in page and 'value="prod"' not in page
    made = developer.post(f"/developer/apps/{org.app_id}/keys",
                          {"name": "CI", "mode": "test", "scopes": "stamps_read", "expires": "never"})
    assert made.status_code == 200 and "New API key" in made.get_data(as_text=True)
    refused = developer.post(f"/developer/apps/{org.app_id}/keys",
                             {"name": "Live", "mode": "prod", "scopes": "stamps_read", "expires": "never"})
    assert refused.status_code == 403
    assert count(app, ApiKey) == 2  # the org's key and the developer's test key
    assert developer.post("/developer/apps", {"name": "Mine"}).status_code == 403
    assert developer.get("/program").status_code == 403


def test_a_developer_cannot_roll_or_revoke_a_production_key(app, org):
    with app.app_context():
        from portal.domain.applications import issue_api_key

        prod, _ = issue_api_key(Application.get(Application.app_id == org.app_id), name="Live", mode="prod",
                                scopes=["stamps_read"])
    developer = teammate(app, org, "developer")[1]
    page = developer.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert page.count(">Revoke</button>") == 1  # the test key's row only
    developer.get(f"/developer/apps/{org.app_id}")
    assert developer.post(f"/developer/apps/{org.app_id}/keys/{prod.id}/revoke").status_code == 403
    assert developer.post(f"/developer/apps/{org.app_id}/keys/{prod.id}/roll", {"old_expires": "now"}).status_code == 403
    assert developer.get(f"/developer/apps/{org.app_id}/keys/{prod.id}/roll").status_code == 403
    assert key_row(app, prod.id).revoked_at is None


def test_an_admin_manages_applications_and_the_program(app, org):
    admin = teammate(app, org, "admin")[1]
    assert admin.get("/program").status_code == 200
    assert admin.post("/developer/apps", {"name": "Till"}).status_code == 200
    assert count(app, Application) == 2


def test_a_demoted_users_open_page_cannot_post_an_admin_action(app, org):
    admin = teammate(app, org, "admin")[1]
    admin.get("/program")
    with app.app_context():
        User.update(role="viewer").where(User.email == "admin@bakery.example").execute()
    response = admin.post("/program/cards", {"name": "Sneaky card"})
    assert response.status_code == 403
    with app.app_context():
        from portal.models import Card

        assert Card.select().count() == 0
