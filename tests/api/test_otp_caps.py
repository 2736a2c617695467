"""OTP caps on top of the per-member limits (DESIGN.md §13): LOYALTY_OTP_PER_APP_HOUR codes
per application and mode per hour, and 10 per destination per hour across all partners;
both 429 otp_rate_limited with Retry-After."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from portal.config import current_settings, use_settings
from portal.models import OtpSend, utcnow
from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


@pytest.fixture
def prod(app, client, creds):
    return SignedClient(client, add_key(app, creds, mode="prod"))


def new_member(api, n: int, **fields) -> str:
    body = {"email": f"m{n}@example.com", **fields}
    response = api.post("/v1/members", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def send(api, member_id: str, channel: str = "email"):
    return api.post(f"/v1/members/{member_id}/otp", json={"channel": channel})


def test_the_application_cap_refuses_the_code_past_it_per_mode(app, api, prod, creds, caplog):
    use_settings(dataclasses.replace(current_settings(), otp_per_app_hour=3))
    members = [new_member(api, i) for i in range(4)]
    assert [send(api, m).status_code for m in members] == [200, 200, 200, 429]
    refused = send(api, new_member(api, 9))
    assert error_of(refused)["code"] == "otp_rate_limited" and error_of(refused)["type"] == "rate_limit_error"
    assert "at most 3 codes an hour in test mode" in error_of(refused)["message"]
    assert int(refused.headers["Retry-After"]) > 3000
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        assert send(prod, new_member(prod, 1)).status_code == 200  # the other mode counts apart


def test_the_application_cap_is_per_application(app, client, api, creds):
    use_settings(dataclasses.replace(current_settings(), otp_per_app_hour=1))
    assert send(api, new_member(api, 1)).status_code == 200
    assert send(api, new_member(api, 2)).status_code == 429
    other = SignedClient(client, create_credentials(app, business="Other Shop"))
    assert send(other, new_member(other, 1)).status_code == 200


def test_an_hour_old_send_no_longer_counts_for_the_application(app, api, creds):
    use_settings(dataclasses.replace(current_settings(), otp_per_app_hour=1))
    first = new_member(api, 1)
    assert send(api, first).status_code == 200
    with app.app_context():
        OtpSend.update(created_at=utcnow() - timedelta(minutes=61)).execute()
    assert send(api, new_member(api, 2)).status_code == 200


def test_ten_codes_per_destination_per_hour_across_all_partners(app, client, caplog):
    partners = [SignedClient(client, create_credentials(app, mode="prod", business=f"Shop {i}")) for i in range(11)]
    statuses = []
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        for partner in partners:
            member = partner.post("/v1/members", json={"email": "target@example.com"}).get_json()["id"]
            statuses.append(send(partner, member).status_code)
    assert statuses == [200] * 10 + [429]
    with app.app_context():
        assert OtpSend.select().count() == 10
    # The phone of another member is a destination of its own.
    other = partners[-1].post("/v1/members", json={"email": "x@example.com", "phone": "+442079460958"}).get_json()
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        assert send(partners[-1], other["id"], "sms").status_code == 200


def test_the_destination_cap_names_what_was_capped_and_test_mode_does_not_count(app, client, caplog):
    partners = [SignedClient(client, create_credentials(app, mode="prod", business=f"Shop {i}")) for i in range(11)]
    with caplog.at_level(logging.INFO, logger="portal.domain.otp"):
        responses = [send(p, p.post("/v1/members", json={"email": "x@example.com", "phone": "+442079460958"})
                          .get_json()["id"], "sms") for p in partners]
    refused = responses[-1]
    assert error_of(refused)["code"] == "otp_rate_limited"
    assert "This phone number was sent 10 codes in the last hour" in error_of(refused)["message"]
    tester = SignedClient(client, create_credentials(app, business="Tester"))
    member = tester.post("/v1/members", json={"phone": "+442079460958"}).get_json()["id"]
    assert send(tester, member, "sms").status_code == 200  # test mode delivers nothing: no destination cap
