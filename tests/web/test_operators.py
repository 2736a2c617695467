"""The operator console (DESIGN.md §14): operators are not partners, partners are not
operators, suspend / reactivate / approve take effect on the partner's keys at once and
land in the partner's audit log; LOYALTY_SIGNUP=approval keeps a new partner waiting."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from portal_helpers import PASSWORD, PortalClient, make_org

from portal import create_app, db
from portal.cli import main
from portal.domain.accounts import WRONG_LOGIN
from portal.domain.operators import change_partner_status, create_operator
from portal.models import AuditEvent, Partner, User
from tests.api.helpers import Credentials, SignedClient, error_of

OPERATOR_EMAIL = "ops@platform.example"


@pytest.fixture
def operator(app, client) -> PortalClient:
    """A signed-in operator."""
    with app.app_context():
        create_operator(OPERATOR_EMAIL, PASSWORD)
    portal = PortalClient(client)
    portal.login(OPERATOR_EMAIL)
    return portal


def signed_call(app, org):
    """`GET /v1/key` signed with the org's test key, from a client of its own."""
    creds = Credentials(org.app_id, org.app_secret, org.key_plaintext, org.partner_id)
    return SignedClient(app.test_client(), creds).get("/v1/key")


def status_of(app, partner_id) -> str:
    with app.app_context():
        return Partner.get_by_id(partner_id).status


def test_create_operator_command_makes_an_operator_who_lands_on_the_console(tmp_path):
    env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": "", "LOYALTY_PASSWORD_HASHING": "fast"}
    runner = CliRunner()
    result = runner.invoke(main, ["create-operator", "--email", "Ops@Platform.example", "--password-stdin", "--init"],
                           input=PASSWORD + "\n", env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ops@platform.example" in result.output
    again = runner.invoke(main, ["create-operator", "--email", "ops@platform.example", "--password-stdin"],
                          input=PASSWORD + "\n", env=env, catch_exceptions=False)
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(main, ["create-operator", "--email", "other@platform.example", "--password-stdin"],
                          input="short\n", env=env, catch_exceptions=False)
    assert short.exit_code == 1 and "at least" in short.output
    db.database.close()

    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "PASSWORD_HASHING": "fast"})
    with app.app_context():
        user = User.get(User.email == "ops@platform.example")
        assert user.is_operator and user.partner_id is None
    portal = PortalClient(app.test_client())
    portal.get("/login")
    response = portal.post("/login", {"email": "ops@platform.example", "password": PASSWORD})
    assert response.status_code == 303
    home = portal.client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/admin/")
    page = portal.get("/admin/").get_data(as_text=True)
    assert "Partners" in page and ">Operator<" in page and ">Developer<" not in page
    db.close_all()


def test_operators_are_listed_and_a_removed_one_is_signed_out_and_cannot_log_in_again(app, operator, tmp_path,
                                                                                      database_url):
    """`list-operators` and `remove-operator`: someone who left the team loses the console
    at once (their open session too); a partner's user is not an operator to remove."""
    import json

    org = make_org(app, "owner@bakery.example")
    with app.app_context():
        create_operator("second@platform.example", PASSWORD)
    assert operator.get("/admin/").status_code == 200
    env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": database_url or "",
           "LOYALTY_PASSWORD_HASHING": "fast"}
    runner = CliRunner()

    listed = runner.invoke(main, ["list-operators"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert OPERATOR_EMAIL in listed.output and "second@platform.example" in listed.output
    assert "owner@bakery.example" not in listed.output and "two-factor off" in listed.output
    as_json = json.loads(runner.invoke(main, ["list-operators", "--json"], env=env, catch_exceptions=False).stdout)
    assert [row["email"] for row in as_json["operators"]] == [OPERATOR_EMAIL, "second@platform.example"]
    assert as_json["operators"][0]["last_login_at"] is not None  # the fixture signed in
    assert as_json["operators"][1] == {**as_json["operators"][1], "last_login_at": None, "two_factor": False}

    removed = runner.invoke(main, ["remove-operator", "--email", OPERATOR_EMAIL.upper()], env=env,
                            catch_exceptions=False)
    assert removed.exit_code == 0 and f"Removed operator {OPERATOR_EMAIL}" in removed.output
    signed_out = operator.client.get("/admin/")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    again = PortalClient(app.test_client())
    again.get("/login")
    refused = again.post("/login", {"email": OPERATOR_EMAIL, "password": PASSWORD})
    assert refused.status_code == 401 and WRONG_LOGIN in refused.get_data(as_text=True)

    twice = runner.invoke(main, ["remove-operator", "--email", OPERATOR_EMAIL], env=env, catch_exceptions=False)
    assert twice.exit_code == 1 and f"No operator has the email {OPERATOR_EMAIL}" in twice.output
    partner_user = runner.invoke(main, ["remove-operator", "--email", org.email], env=env, catch_exceptions=False)
    assert partner_user.exit_code == 1 and "No operator has the email" in partner_user.output
    malformed = runner.invoke(main, ["remove-operator", "--email", "not an email"], env=env, catch_exceptions=False)
    assert malformed.exit_code == 1 and "valid email" in malformed.output
    with app.app_context():
        assert User.get_or_none(User.email == org.email) is not None
        assert [u.email for u in User.select().where(User.role == "operator")] == ["second@platform.example"]
        assert AuditEvent.select().where((AuditEvent.action == "operator.removed")
                                         & (AuditEvent.target == OPERATOR_EMAIL)).count() == 1
    listed = runner.invoke(main, ["list-operators"], env=env, catch_exceptions=False)
    assert OPERATOR_EMAIL not in listed.output and "second@platform.example" in listed.output


def test_the_partners_table_shows_the_columns_and_searches(app, operator):
    org = make_org(app, "owner@bakery.example")
    make_org(app, "owner@rival.example", "Rival Roasters")
    page = operator.get("/admin/").get_data(as_text=True)
    for heading in ("Business", "Owner", "Created", "Status", "Applications", "Active keys", "Requests (7 days)"):
        assert f">{heading}<" in page
    assert "Corner Bakery" in page and "Rival Roasters" in page and "owner@bakery.example" in page
    assert "Active" in page

    plain = operator.get("/admin/?q=rival").get_data(as_text=True)
    assert "Rival Roasters" in plain and "Corner Bakery" not in plain and "<html" in plain
    swapped = operator.get("/admin/?q=BAKERY.example", htmx=True).get_data(as_text=True)
    assert "Corner Bakery" in swapped and "Rival Roasters" not in swapped and "<html" not in swapped
    nothing = operator.get("/admin/?q=nobody%25here").get_data(as_text=True)
    assert "No partner matches" in nothing
    assert "No partner matches" in operator.get("/admin/?status=suspended").get_data(as_text=True)
    assert "Rival Roasters" in operator.get("/admin/?status=active&q=rival").get_data(as_text=True)
    assert org.app_secret not in page and org.key_plaintext not in page


def test_an_operator_sees_metadata_never_secrets_or_keys(app, operator):
    org = make_org(app, "owner@bakery.example")
    page = operator.get(f"/admin/partners/{org.partner_id}").get_data(as_text=True)
    assert "Corner Bakery" in page and "Web shop" in page and "owner@bakery.example" in page
    assert "Suspend partner" in page and "Audit log" in page and "account.signup" in page
    for secret in (org.app_secret, org.key_plaintext):
        assert secret not in page
    assert operator.get("/admin/partners/999999").status_code == 404
    assert operator.get("/admin/partners/" + "9" * 30).status_code == 404  # too long for the database


@pytest.mark.parametrize("path", ["/developer", "/program", "/team", "/audit", "/audit.csv"])
def test_an_operator_gets_403_on_partner_pages(app, operator, path):
    make_org(app, "owner@bakery.example")
    response = operator.get(path)
    assert response.status_code == 403
    assert "Operator area" in response.get_data(as_text=True)


def test_an_operator_cannot_reach_a_partners_application_or_create_one(app, operator):
    org = make_org(app, "owner@bakery.example")
    assert operator.get(f"/developer/apps/{org.app_id}").status_code == 403
    assert operator.post("/developer/apps", {"name": "Sneaky"}).status_code == 403
    assert operator.post(f"/developer/apps/{org.app_id}/keys/{org.key_id}/revoke").status_code == 403
    # their own account is theirs to manage
    assert operator.get("/account").status_code == 200


@pytest.mark.parametrize("role", ["owner", "admin", "developer", "viewer"])
def test_partners_of_every_role_get_403_on_the_console(app, role):
    from portal.domain.accounts import passwords

    org = make_org(app, "owner@bakery.example")
    email = f"{role}-x@bakery.example"
    with app.app_context():
        if role != "owner":
            User.create(partner=org.partner_id, email=email, password_hash=passwords().hash(PASSWORD), role=role)
    portal = PortalClient(app.test_client())
    portal.login(org.email if role == "owner" else email)
    for path in ("/admin/", f"/admin/partners/{org.partner_id}"):
        response = portal.get(path)
        assert response.status_code == 403 and "operators only" in response.get_data(as_text=True)
    refused = portal.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"})
    assert refused.status_code == 403
    assert status_of(app, org.partner_id) == "active"
    assert ">Operator<" not in portal.get("/").get_data(as_text=True)


def test_suspending_stops_the_keys_at_once_and_reactivating_restores_them(app, operator):
    org = make_org(app, "owner@bakery.example")
    assert signed_call(app, org).status_code == 200
    operator.get(f"/admin/partners/{org.partner_id}")
    response = operator.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"}, htmx=True)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Reactivate partner" in body and "is suspended" in body and "<html" not in body
    assert status_of(app, org.partner_id) == "suspended"
    refused = signed_call(app, org)
    assert refused.status_code == 403 and error_of(refused)["code"] == "account_disabled"

    again = operator.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"}, htmx=True)
    assert again.status_code == 409 and "cannot be suspended" in again.get_data(as_text=True)

    back = operator.post(f"/admin/partners/{org.partner_id}/reactivate", {"confirmed": "1"})
    assert back.status_code == 303
    assert status_of(app, org.partner_id) == "active"
    assert signed_call(app, org).status_code == 200

    with app.app_context():
        events = list(AuditEvent.select().where(AuditEvent.partner == org.partner_id,
                                                AuditEvent.action.startswith("operator."))
                      .order_by(AuditEvent.id))
    assert [e.action for e in events] == ["operator.partner_suspended", "operator.partner_reactivated"]
    assert all(e.actor == OPERATOR_EMAIL and e.target == "Corner Bakery" for e in events)
    # … and the partner's own owner reads them in their audit log
    owner = PortalClient(app.test_client())
    owner.login(org.email)
    log = owner.get("/audit").get_data(as_text=True)
    assert "operator.partner_suspended" in log and OPERATOR_EMAIL in log


def test_without_javascript_a_page_asks_first_and_nothing_changes_until_confirmed(app, operator):
    org = make_org(app, "owner@bakery.example")
    operator.get(f"/admin/partners/{org.partner_id}")
    asked = operator.post(f"/admin/partners/{org.partner_id}/suspend")
    assert asked.status_code == 200 and "Suspend partner: Corner Bakery?" in asked.get_data(as_text=True)
    assert status_of(app, org.partner_id) == "active"
    done = operator.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"})
    assert done.status_code == 303 and status_of(app, org.partner_id) == "suspended"
    page = operator.get(f"/admin/partners/{org.partner_id}").get_data(as_text=True)
    assert "Corner Bakery is suspended." in page


def test_a_status_change_without_the_csrf_token_is_refused(app, operator):
    org = make_org(app, "owner@bakery.example")
    for htmx in (False, True):
        response = operator.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"}, htmx=htmx,
                                 csrf=False)
        assert response.status_code == 400
    assert status_of(app, org.partner_id) == "active"


def test_a_suspended_partners_users_see_why(app, operator):
    org = make_org(app, "owner@bakery.example")
    signed_in = PortalClient(app.test_client())
    signed_in.login(org.email)
    operator.get(f"/admin/partners/{org.partner_id}")
    operator.post(f"/admin/partners/{org.partner_id}/suspend", {"confirmed": "1"})
    page = signed_in.get("/developer")
    assert page.status_code == 403 and "suspended" in page.get_data(as_text=True)
    again = PortalClient(app.test_client())
    again.get("/login")
    refused = again.post("/login", {"email": org.email, "password": PASSWORD})
    assert refused.status_code != 303 and "suspended" in refused.get_data(as_text=True)
    # the operator stays signed in and sees the partner as suspended
    assert "Suspended" in operator.get("/admin/").get_data(as_text=True)


# -- LOYALTY_SIGNUP=approval -------------------------------------------------------------------


@pytest.fixture
def approval_app(tmp_path, database_url):
    application = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "DATABASE_URL": database_url,
                              "PASSWORD_HASHING": "fast", "SIGNUP": "approval"})
    yield application
    db.close_all()


def test_a_new_partner_waits_for_approval_and_its_keys_work_only_after(approval_app):
    app = approval_app
    partner = PortalClient(app.test_client())
    assert "an operator approves each new partner" in partner.get("/signup").get_data(as_text=True)
    response = partner.post("/signup", {"business_name": "Waiting Bakery", "email": "new@bakery.example",
                                        "password": PASSWORD})
    assert response.status_code == 303
    home = partner.get("/")
    assert home.status_code == 200 and "Waiting for approval" in home.get_data(as_text=True)
    waiting = partner.get("/developer")
    assert "Waiting for approval" in waiting.get_data(as_text=True)
    # logging in again leads to the same page (a pending partner is not a suspended one)
    again = PortalClient(app.test_client())
    again.login("new@bakery.example")
    assert "Waiting for approval" in again.get("/").get_data(as_text=True)
    assert partner.post("/developer/apps", {"name": "Early"}).status_code == 403

    with app.app_context():
        from portal.domain.applications import create_application, issue_api_key

        user = User.get(User.email == "new@bakery.example")
        assert user.partner.status == "pending"
        application, secret = create_application(user.partner, "Till", by=user)
        _, key = issue_api_key(application, name="k", mode="test", scopes=["stamps_read"])
        create_operator(OPERATOR_EMAIL, PASSWORD)
    creds = Credentials(application.app_id, secret, key)
    refused = SignedClient(app.test_client(), creds).get("/v1/key")
    assert refused.status_code == 403 and error_of(refused)["code"] == "account_disabled"
    assert "approval" in error_of(refused)["message"]

    operator = PortalClient(app.test_client())
    operator.login(OPERATOR_EMAIL)
    listed = operator.get("/admin/").get_data(as_text=True)
    assert "Waiting Bakery" in listed and "1 partner waiting for approval" in listed
    assert "Waiting Bakery" in operator.get("/admin/?status=pending", htmx=True).get_data(as_text=True)
    page = operator.get(f"/admin/partners/{user.partner_id}").get_data(as_text=True)
    assert ">Approve<" in page
    approved = operator.post(f"/admin/partners/{user.partner_id}/approve", {"confirmed": "1"}, htmx=True)
    assert approved.status_code == 200 and "is active" in approved.get_data(as_text=True)

    assert SignedClient(app.test_client(), creds).get("/v1/key").status_code == 200
    assert "Waiting for approval" not in partner.get("/").get_data(as_text=True)
    with app.app_context():
        assert AuditEvent.select().where(AuditEvent.partner == user.partner_id,
                                         AuditEvent.action == "operator.partner_approved").count() == 1


def test_partners_made_from_the_command_line_start_active_under_approval(approval_app):
    from portal.domain.accounts import create_partner_account

    with approval_app.app_context():
        user = create_partner_account("Shop", "cli@shop.example", PASSWORD, via="cli")
        assert user.partner.status == "active"


def test_a_suspension_in_the_middle_of_a_burst_refuses_every_later_call_on_every_process(tmp_path):
    """Two server processes answer a burst of signed calls; the operator's suspension
    commits half-way. Every call sent after that commit answers 403 account_disabled."""
    import threading
    import time

    import requests

    from tests.api.helpers import SignedAuth
    from tests.conftest import LiveServer

    server = LiveServer(tmp_path, workers=2).start()
    try:
        demo = server.demo()
        made = server.cli("create-operator", "--email", OPERATOR_EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
        auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
        suspended_at = []
        results: list[tuple[float, int, str]] = []
        lock = threading.Lock()

        stop = threading.Event()

        def burst():
            deadline = time.monotonic() + 30  # bounded, whatever happens
            while not stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                response = requests.get(server.url + "/v1/key", auth=auth, timeout=10)
                code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
                with lock:
                    results.append((sent, response.status_code, code))

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        app = create_app({"DATA_DIR": str(tmp_path), "PASSWORD_HASHING": "fast"})
        with app.app_context():
            operator = User.get(User.email == OPERATOR_EMAIL)
            partner_id = User.get(User.email == demo["email"]).partner_id
            change_partner_status(partner_id, "suspend", by=operator)
            suspended_at.append(time.monotonic())
        db.close_all()
        time.sleep(0.5)  # the burst goes on after the commit
        stop.set()
        for thread in threads:
            thread.join()
        before = [r for r in results if r[0] < suspended_at[0]]
        after = [r for r in results if r[0] > suspended_at[0]]
        assert before and after, (len(before), len(after))
        assert all(status == 200 for _, status, _ in before[:5])
        assert all(status == 403 and code == "account_disabled" for _, status, code in after), after
    finally:
        server.stop()


def test_requests_in_the_last_7_days_come_from_the_request_log(app, operator):
    from portal.domain import request_log
    from portal.domain.operators import partner_rows

    org = make_org(app, "owner@bakery.example")
    quiet = make_org(app, "owner@rival.example", "Rival Roasters")
    for _ in range(3):
        assert signed_call(app, org).status_code == 200
    with app.app_context():
        request_log.flush()
        counts = {row.name: row.requests_7d for row in partner_rows()}
    assert counts == {"Corner Bakery": 3, "Rival Roasters": 0}
    page = operator.get(f"/admin/partners/{quiet.partner_id}").get_data(as_text=True)
    assert "Requests (7 days)" in page

