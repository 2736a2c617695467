"""The platform's mail (portal.mail): team invites, password resets and production OTP
emails go through SMTP when LOYALTY_SMTP_URL is set — here a real SMTP server on a
loopback port (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import re
import time

import pytest

from portal import create_app, db
from tests.conftest import free_port
from tests.web.portal_helpers import PASSWORD, PortalClient, make_org

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")


class Inbox:
    """Messages the sink received, parsed."""

    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[email.message.Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def inbox():
    box = Inbox()
    controller = aiosmtpd_controller.Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.url = f"smtp://127.0.0.1:{controller.port}"
    yield box
    controller.stop()


@pytest.fixture
def mail_app(tmp_path, inbox):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "SMTP_URL": inbox.url,
                      "MAIL_FROM": "portal@bakery.example", "PUBLIC_URL": "https://partners.example.com",
                      "PASSWORD_HASHING": "fast"})
    with app.app_context():
        db.migrate()
    yield app
    db.close_all()


def body(message) -> str:
    return message.get_payload(decode=True).decode()


def test_an_invite_is_emailed_when_mail_is_configured(mail_app, inbox):
    org = make_org(mail_app, "owner@bakery.example")
    owner = PortalClient(mail_app.test_client())
    owner.login(org.email)
    owner.get("/team")
    page = owner.post("/team/invites", {"email": "dev@bakery.example", "role": "developer"}).get_data(as_text=True)
    assert "created and emailed" in page
    (message,) = inbox.wait_for()
    assert message["To"] == "dev@bakery.example" and message["From"] == "portal@bakery.example"
    assert message["Subject"] == "Join Corner Bakery on Loyalty Partners"
    link = re.search(r"https://partners\.example\.com(/invite/\S+)", body(message)).group(1)
    assert link in page  # the same link, shown once
    joined = PortalClient(mail_app.test_client()).post(link, {"password": PASSWORD})
    assert joined.status_code == 303


def test_a_reset_link_is_emailed_and_nothing_is_sent_for_an_unknown_email(mail_app, inbox):
    org = make_org(mail_app, "owner@bakery.example")
    portal = PortalClient(mail_app.test_client())
    portal.get("/forgot-password")
    portal.post("/forgot-password", {"email": "nobody@bakery.example"})
    portal.post("/forgot-password", {"email": org.email})
    (message,) = inbox.wait_for()
    time.sleep(0.2)
    assert len(inbox.messages) == 1 and message["To"] == org.email
    link = re.search(r"https://partners\.example\.com(/reset-password/\S+)", body(message)).group(1)
    assert portal.get(link).status_code == 200


def test_a_production_otp_email_goes_through_the_same_mail(mail_app, inbox):
    from portal.domain.otp import sender_for
    from portal.models import Member, Partner

    with mail_app.app_context():
        member = Member(partner=Partner(name="x"), mode="prod", email="ana@example.com", public_id="mem_x")
        sender_for("email").send(member, "email", "123456")
    (message,) = inbox.wait_for()
    assert message["To"] == "ana@example.com" and "123456" in body(message)


def test_an_unreachable_mail_server_still_shows_the_invite_link(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
                      "PASSWORD_HASHING": "fast"})
    with app.app_context():
        db.migrate()
    try:
        org = make_org(app, "owner@bakery.example")
        owner = PortalClient(app.test_client())
        owner.login(org.email)
        owner.get("/team")
        response = owner.post("/team/invites", {"email": "dev@bakery.example", "role": "viewer"})
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and 'aria-label="Invite link"' in page
        assert "could not be sent; copy the link below" in page
    finally:
        db.close_all()
