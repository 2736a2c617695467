"""The Audit log page: owners and admins see who did what, newest first, filter it by user
and action, and download it as CSV; nobody sees another partner's events."""

from __future__ import annotations

import csv
import io

from portal_helpers import PASSWORD, PortalClient

from portal.domain import audit
from portal.domain.accounts import passwords
from portal.models import User


def rows_of(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr>")[1:]


def test_the_owner_sees_sign_ins_failures_and_changes_newest_first(app, org, other_org, signed_in, portal):
    stranger = PortalClient(app.test_client())
    stranger.get("/login")
    stranger.post("/login", {"email": org.email, "password": "not the password"})
    html = signed_in.get("/audit").get_data(as_text=True)
    rows = rows_of(html)
    actions = [row.split("<code>", 1)[1].split("</code>", 1)[0] for row in rows]
    assert actions[:2] == ["login.failed", "login.succeeded"]
    assert {"key.created", "application.created", "account.signup"} <= set(actions)
    assert all(org.email in row for row in rows)  # every entry names who acted
    assert "127.0.0.1" in rows[0]
    assert other_org.email not in html


def test_filters_by_user_and_action_and_the_csv_follows_them(app, org, signed_in):
    with app.app_context():
        admin = User.create(partner=org.partner_id, email="admin@bakery.example",
                            password_hash=passwords().hash(PASSWORD), role="admin")
        audit.record("card.created", user=admin, target="card_x", detail="=HYPERLINK(\"http://evil\")")
    page = signed_in.get("/audit?user=admin%40bakery.example").get_data(as_text=True)
    assert len(rows_of(page)) == 1 and "card.created" in page
    assert 'value="admin@bakery.example" selected' in page
    partial = signed_in.get("/audit?action=key.created", htmx=True).get_data(as_text=True)
    assert "<html" not in partial and len(rows_of(partial)) == 1

    response = signed_in.get("/audit.csv?user=admin%40bakery.example")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["time", "user", "action", "target", "detail", "address"]
    assert table[1][1:4] == ["admin@bakery.example", "card.created", "card_x"]
    assert table[1][4].startswith("'=")  # a spreadsheet shows it as text, never runs it
    assert len(table) == 2


def test_older_events_are_paged(app, org, signed_in):
    with app.app_context():
        user = User.get_by_id(org.user_id)
        for n in range(audit.PAGE_SIZE + 5):
            audit.record("card.updated", user=user, target=f"card_{n:03d}")
    first = signed_in.get("/audit?action=card.updated").get_data(as_text=True)
    assert len(rows_of(first)) == audit.PAGE_SIZE and "card_054" in first and "Older" in first
    older = first.split('href="', 1)[0]  # noqa: F841
    link = [part.split('"', 1)[0] for part in first.split('href="') if "before=" in part.split('"', 1)[0]][0]
    second = signed_in.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert len(rows_of(second)) == 5 and "card_000" in second and "card_054" not in second


def test_developers_and_viewers_neither_see_nor_open_the_audit_log(app, org):
    for role in ("developer", "viewer"):
        email = f"{role}@bakery.example"
        with app.app_context():
            User.create(partner=org.partner_id, email=email, password_hash=passwords().hash(PASSWORD), role=role)
        client = PortalClient(app.test_client())
        client.login(email)
        assert "Audit log" not in client.get("/").get_data(as_text=True)
        assert client.get("/audit").status_code == 403
        assert client.get("/audit.csv").status_code == 403
