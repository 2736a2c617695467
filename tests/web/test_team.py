"""The Team page: invites (shown once, single-use, 7 days), joining, role changes and
removal, with the rules that owners manage everyone, admins everyone but owners, and a
team always keeps an owner."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from portal_helpers import PASSWORD, PortalClient, teammate

from portal.models import AuditEvent, TeamInvite, User, UserSession, utcnow

_LINK_RE = re.compile(r'aria-label="Invite link"[^>]*>([^<]+)<')


def invite(portal: PortalClient, email="dev@bakery.example", role="developer", htmx=False):
    portal.get("/team")
    return portal.post("/team/invites", {"email": email, "role": role}, htmx=htmx)


def link_path(response) -> str:
    match = _LINK_RE.search(response.get_data(as_text=True))
    assert match, "no invite link in the response"
    return "/" + match.group(1).split("/", 3)[3]


def role_of(app, email):
    with app.app_context():
        user = User.get_or_none(User.email == email)
        return user.role if user else None


def test_an_invite_link_is_shown_once_and_the_invitee_joins_with_that_role(app, signed_in, org):
    response = invite(signed_in)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    path = link_path(response)
    assert re.fullmatch(r"/invite/[A-Za-z0-9_-]{43}", path)
    page = signed_in.get("/team").get_data(as_text=True)
    assert path not in page and "dev@bakery.example" in page  # pending, the link not shown again
    with app.app_context():
        stored = TeamInvite.get()
        assert path.rsplit("/", 1)[1] not in stored.token_hash  # only a hash is kept
        assert stored.expires_at - stored.created_at == timedelta(days=7)

    newcomer = PortalClient(app.test_client())
    join_page = newcomer.get(path).get_data(as_text=True)
    assert "Join Corner Bakery" in join_page and "Developer" in join_page
    joined = newcomer.post(path, {"password": PASSWORD})
    assert joined.status_code == 303 and joined.location == "/"
    assert "You joined as Developer" in newcomer.get("/").get_data(as_text=True)
    assert role_of(app, "dev@bakery.example") == "developer"
    with app.app_context():
        assert User.get(User.email == "dev@bakery.example").partner_id == org.partner_id
        assert AuditEvent.select().where(AuditEvent.action == "team.joined").count() == 1


def test_the_invite_form_opens_inline_for_htmx_and_its_link_comes_back_in_the_swap(signed_in):
    signed_in.get("/team")
    form = signed_in.get("/team/invite", htmx=True).get_data(as_text=True)
    assert "Send invite" in form and "<html" not in form
    response = invite(signed_in, htmx=True)
    html = response.get_data(as_text=True)
    assert 'aria-label="Invite link"' in html and 'id="pending-invites" class="card"' in html
    assert "hx-swap-oob" in html and response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("change, status, message", [
    ("used", 410, "has been used already"),
    ("expired", 410, "has expired"),
    ("forged", 404, "not valid"),
])
def test_a_used_expired_or_forged_invite_link_is_refused_clearly(app, signed_in, change, status, message):
    path = link_path(invite(signed_in))
    if change == "used":
        PortalClient(app.test_client()).post(path, {"password": PASSWORD}, csrf=True)
    elif change == "expired":
        with app.app_context():
            TeamInvite.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    else:
        path = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    stranger = PortalClient(app.test_client())
    page = stranger.get(path)
    assert page.status_code == status and message in page.get_data(as_text=True)
    posted = stranger.post(path, {"password": "another long passphrase"})
    assert posted.status_code == status
    with app.app_context():
        assert User.select().where(User.email == "dev@bakery.example").count() == (1 if change == "used" else 0)


def test_an_email_with_an_account_cannot_join_a_second_team(app, signed_in, other_org):
    path = link_path(invite(signed_in, email=other_org.email))
    response = PortalClient(app.test_client()).post(path, {"password": PASSWORD})
    assert response.status_code == 422 and "already has an account" in response.get_data(as_text=True)
    with app.app_context():
        assert User.get(User.email == other_org.email).partner_id == other_org.partner_id


def test_inviting_someone_already_on_the_team_or_a_bad_email_says_so(signed_in, org):
    assert "already on your team" in invite(signed_in, email=org.email).get_data(as_text=True)
    bad = invite(signed_in, email="not-an-email")
    assert bad.status_code == 422 and "valid email address" in bad.get_data(as_text=True)


def test_a_new_invite_to_the_same_email_replaces_the_pending_one(app, signed_in):
    first = link_path(invite(signed_in))
    invite(signed_in, role="viewer")
    assert PortalClient(app.test_client()).get(first).status_code == 404
    with app.app_context():
        assert [i.role for i in TeamInvite.select()] == ["viewer"]


def test_a_withdrawn_invite_stops_working(app, signed_in):
    path = link_path(invite(signed_in))
    with app.app_context():
        invite_id = TeamInvite.get().id
    signed_in.get("/team")
    assert signed_in.post(f"/team/invites/{invite_id}/cancel").status_code == 303
    assert PortalClient(app.test_client()).get(path).status_code == 404


def test_viewers_and_developers_see_the_team_but_cannot_change_it(app, org):
    for role in ("viewer", "developer"):
        user, client = teammate(app, org, role)
        page = client.get("/team").get_data(as_text=True)
        assert org.email in page and "Invite teammate" not in page and ">Remove<" not in page
        assert "<select" not in page  # no Role select
        assert client.post("/team/invites", {"email": "x@bakery.example", "role": "viewer"}).status_code == 403
        assert client.post(f"/team/users/{org.user_id}/role", {"role": "viewer"}).status_code == 403
        assert client.post(f"/team/users/{org.user_id}/remove", {"confirmed": "1"}).status_code == 403
    assert role_of(app, org.email) == "owner"
    with app.app_context():
        assert TeamInvite.select().count() == 0


def test_an_admin_manages_developers_but_never_an_owner(app, org):
    admin, client = teammate(app, org, "admin")
    developer, _ = teammate(app, org, "developer")
    page = client.get("/team").get_data(as_text=True)
    assert page.count(">Remove</button>") == 1  # the developer's row only (not the owner's, not their own)
    assert '<option value="owner"' not in page
    assert client.post(f"/team/users/{developer.id}/role", {"role": "viewer"}).status_code == 303
    assert role_of(app, developer.email) == "viewer"
    refused = client.post(f"/team/users/{org.user_id}/role", {"role": "viewer"})
    assert refused.status_code == 403 and "Owner" in refused.get_data(as_text=True)
    assert client.post(f"/team/users/{developer.id}/role", {"role": "owner"}).status_code == 403
    assert client.post(f"/team/users/{org.user_id}/remove", {"confirmed": "1"}).status_code == 403
    assert invite(client, email="boss@bakery.example", role="owner").status_code == 403
    assert role_of(app, org.email) == "owner" and role_of(app, developer.email) == "viewer"


def test_the_last_owner_can_be_neither_demoted_nor_removed(app, signed_in, org):
    signed_in.get("/team")
    response = signed_in.post(f"/team/users/{org.user_id}/role", {"role": "admin"}, htmx=True)
    assert response.status_code == 409 and "last owner" in response.get_data(as_text=True)
    assert role_of(app, org.email) == "owner"
    second, second_client = teammate(app, org, "owner", "second@bakery.example")
    assert second_client.post(f"/team/users/{org.user_id}/remove", {"confirmed": "1"}).status_code == 303
    assert role_of(app, org.email) is None
    second_client.get("/team")
    refused = second_client.post(f"/team/users/{second.id}/role", {"role": "viewer"})
    assert refused.status_code == 303
    assert "last owner" in second_client.get("/team").get_data(as_text=True)
    assert role_of(app, second.email) == "owner"


def test_an_owner_hands_over_ownership_and_steps_down(app, signed_in, org):
    admin, _ = teammate(app, org, "admin")
    signed_in.get("/team")
    assert signed_in.post(f"/team/users/{admin.id}/role", {"role": "owner"}).status_code == 303
    assert signed_in.post(f"/team/users/{org.user_id}/role", {"role": "developer"}).status_code == 303
    assert (role_of(app, admin.email), role_of(app, org.email)) == ("owner", "developer")
    assert "Invite teammate" not in signed_in.get("/team").get_data(as_text=True)


def test_remove_asks_first_without_javascript_and_ends_the_removed_users_sessions(app, signed_in, org):
    developer, dev_client = teammate(app, org, "developer")
    assert dev_client.get("/developer").status_code == 200
    signed_in.get("/team")
    confirm = signed_in.post(f"/team/users/{developer.id}/remove")
    assert confirm.status_code == 200 and "Remove developer@bakery.example?" in confirm.get_data(as_text=True)
    assert role_of(app, developer.email) == "developer"  # nothing removed yet
    removed = signed_in.post(f"/team/users/{developer.id}/remove", {"confirmed": "1"})
    assert removed.status_code == 303
    assert role_of(app, developer.email) is None
    with app.app_context():
        assert UserSession.select().where(UserSession.user == developer.id).count() == 0
        assert AuditEvent.get(AuditEvent.action == "team.removed").actor == org.email
    # The removed user's open page is signed out on its next request.
    assert dev_client.get("/developer").status_code == 302
    assert dev_client.post("/developer/apps", {"name": "Sneaky"}).status_code in (302, 303, 400)


def test_team_changes_over_htmx_swap_the_members_table(app, signed_in, org):
    developer, _ = teammate(app, org, "developer")
    signed_in.get("/team")
    response = signed_in.post(f"/team/users/{developer.id}/role", {"role": "viewer"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="team-members"' in html and "<html" not in html
    assert "is now Viewer" in html  # the flash, out of band
    removed = signed_in.post(f"/team/users/{developer.id}/remove", {"confirmed": "1"}, htmx=True)
    assert "developer@bakery.example" not in removed.get_data(as_text=True).split('id="flashes"')[0]


def test_team_forms_need_the_csrf_token(app, signed_in, org):
    developer, _ = teammate(app, org, "developer")
    signed_in.get("/team")
    assert signed_in.post("/team/invites", {"email": "x@bakery.example", "role": "viewer"}, csrf=False).status_code == 400
    assert signed_in.post(f"/team/users/{developer.id}/remove", {"confirmed": "1"}, csrf=False).status_code == 400
    assert role_of(app, developer.email) == "developer"


def test_another_partners_user_cannot_be_touched(app, signed_in, other_org):
    signed_in.get("/team")
    assert signed_in.post(f"/team/users/{other_org.user_id}/role", {"role": "viewer"}).status_code == 404
    assert signed_in.post(f"/team/users/{other_org.user_id}/remove", {"confirmed": "1"}).status_code == 404
    assert other_org.email not in signed_in.get("/team").get_data(as_text=True)
    assert role_of(app, other_org.email) == "owner"


def test_the_sidebar_and_the_docs_lead_to_the_team_and_security_pages(signed_in):
    home = signed_in.get("/").get_data(as_text=True)
    for href, label in (("/team", "Team"), ("/account", "Account"), ("/audit", "Audit log")):
        assert f'href="{href}">{label}</a>' in home
    guide = signed_in.get("/docs").get_data(as_text=True)
    assert "Team and security" in guide and "12 hours without use" in guide and "recovery codes" in guide
