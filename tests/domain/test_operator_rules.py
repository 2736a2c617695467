"""The operator rules on both engines: the partners overview (counts, search), status
changes that happen once from the state seen, and their audit entries."""

from __future__ import annotations

import pytest

from portal.domain import Conflict, Invalid, NotFound
from portal.domain.applications import create_application, issue_api_key, revoke_api_key
from portal.domain.operators import change_partner_status, create_operator, partner_overview, partner_rows
from portal.models import AuditEvent, Partner, User

PASSWORD = "a long enough passphrase"


@pytest.fixture
def operator(app, database):
    return create_operator("ops@platform.example", PASSWORD)


def _partner_with(name: str, email: str, *, apps: int = 1, live_keys: int = 0, dead_keys: int = 0) -> Partner:
    partner = Partner.create(name=name)
    User.create(partner=partner, email=email, password_hash="x", role="owner")
    for n in range(apps):
        application, _ = create_application(partner, f"App {n}")
        for _ in range(live_keys):
            issue_api_key(application, name="live", mode="test", scopes=["stamps_read"])
        for _ in range(dead_keys):
            key, _ = issue_api_key(application, name="dead", mode="test", scopes=["stamps_read"])
            revoke_api_key(key)
        live_keys = dead_keys = 0  # keys on the first application only
    return partner


def test_the_overview_counts_applications_and_live_keys_and_searches(operator):
    bakery = _partner_with("Corner Bakery", "owner@bakery.example", apps=2, live_keys=2, dead_keys=1)
    _partner_with("Rival Roasters", "owner@rival.example", apps=0)
    rows = {row.name: row for row in partner_rows()}
    assert rows["Corner Bakery"].applications == 2 and rows["Corner Bakery"].active_keys == 2
    assert rows["Corner Bakery"].owner_email == "owner@bakery.example"
    assert rows["Rival Roasters"].applications == 0 and rows["Rival Roasters"].active_keys == 0
    assert [row.name for row in partner_rows("ROAST")] == ["Rival Roasters"]
    assert [row.name for row in partner_rows("bakery.example")] == ["Corner Bakery"]
    assert partner_rows("nobody") == []
    assert partner_overview(bakery.id)[0].name == "Corner Bakery"
    with pytest.raises(NotFound):
        partner_overview(10**9)
    # operators are nobody's owner and appear in no partner's row
    assert all(row.owner_email != "ops@platform.example" for row in partner_rows())


def test_a_status_change_happens_once_and_is_audited_in_the_partners_log(operator):
    partner = _partner_with("Corner Bakery", "owner@bakery.example")
    assert change_partner_status(partner.id, "suspend", by=operator).status == "suspended"
    with pytest.raises(Conflict):
        change_partner_status(partner.id, "suspend", by=operator)
    with pytest.raises(Conflict):
        change_partner_status(partner.id, "approve", by=operator)
    assert change_partner_status(partner.id, "reactivate", by=operator).status == "active"
    events = list(AuditEvent.select().where(AuditEvent.partner == partner.id, AuditEvent.action.startswith("operator."))
                  .order_by(AuditEvent.id))
    assert [(e.action, e.actor, e.user_id) for e in events] == [
        ("operator.partner_suspended", "ops@platform.example", operator.id),
        ("operator.partner_reactivated", "ops@platform.example", operator.id),
    ]


def test_only_an_operator_changes_a_status(operator):
    partner = _partner_with("Corner Bakery", "owner@bakery.example")
    owner = User.get(User.email == "owner@bakery.example")
    with pytest.raises(Invalid):
        change_partner_status(partner.id, "suspend", by=owner)
    with pytest.raises(Invalid):
        change_partner_status(partner.id, "delete", by=operator)
    assert Partner.get_by_id(partner.id).status == "active"


def test_an_operator_email_is_unique_across_all_users(operator):
    _partner_with("Corner Bakery", "owner@bakery.example")
    for email in ("ops@platform.example", "OWNER@bakery.example"):
        with pytest.raises(Conflict):
            create_operator(email, PASSWORD)
    assert operator.is_operator and operator.partner_id is None
