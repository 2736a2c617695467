"""The portal's Webhooks: the application page's section, "Add endpoint" with its
show-once "Signing secret", an endpoint's page and its actions, deliveries with "Resend",
a delivery's attempts, the banner for an endpoint the platform disabled, roles (DESIGN.md
§10: developers manage test-mode endpoints, admins production ones, viewers none) and
another partner's endpoints answering 404."""

from __future__ import annotations

import re

from portal_helpers import PortalClient, make_org, teammate

from portal.domain import events
from portal.models import Application, AuditEvent, WebhookDelivery, WebhookEndpoint
from portal.webhooks_worker import deliver_due
from tests.webhooks.receiver import Receiver, verified

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]{44}")


def _add(portal, org, url, mode="test", types=None, htmx=False):
    return portal.post(f"/developer/apps/{org.app_id}/webhooks", {
        "url": url, "description": "CRM sync", "mode": mode, "event_types": types or list(events.EVENT_TYPES),
    }, htmx=htmx)


def _endpoint(app) -> WebhookEndpoint:
    with app.app_context():
        return WebhookEndpoint.select().order_by(WebhookEndpoint.id.desc()).first()


def _deliver(app):
    with app.app_context():
        while deliver_due():
            pass


def test_add_an_endpoint_see_its_secret_once_and_send_it_a_test_event(app, signed_in, org):
    page = signed_in.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert 'id="webhooks-title">Webhooks<' in page and ">Add endpoint<" in page
    form = signed_in.get(f"/developer/apps/{org.app_id}/webhooks/new").get_data(as_text=True)
    for label in ("Endpoint URL", "Description", "> Test</label>", "> Production</label>", ">Add endpoint</button>"):
        assert label in form
    assert all(f'value="{name}"' in form for name in events.EVENT_TYPES)

    with Receiver() as receiver:
        added = _add(signed_in, org, receiver.url("/ok"))
        assert added.status_code == 200 and added.headers["Cache-Control"] == "no-store"
        html = added.get_data(as_text=True)
        assert 'aria-label="Signing secret"' in html
        secret = SECRET_RE.search(html).group(0)
        endpoint = _endpoint(app)
        page_url = f"/developer/apps/{org.app_id}/webhooks/{endpoint.public_id}"
        again = signed_in.get(page_url).get_data(as_text=True)
        assert secret not in again  # shown once
        for control in ("Send test event", "Rotate secret", ">Disable<", ">Delete<"):
            assert control in again

        assert signed_in.post(f"{page_url}/test").status_code == 303
        _deliver(app)
        [received] = receiver.received
        assert verified(received, secret)["type"] == "webhook.test"

    page = signed_in.get(page_url).get_data(as_text=True)
    for heading in ("Event", "Status", "Attempts", "Response", "Next retry"):
        assert f">{heading}</th>" in page
    assert "webhook.test" in page and "Succeeded" in page and ">Resend</button>" in page
    with app.app_context():
        delivery = WebhookDelivery.get(WebhookDelivery.endpoint == endpoint.id)
    detail = signed_in.get(f"{page_url}/deliveries/{delivery.id}").get_data(as_text=True)
    assert "Request body" in detail and "webhook_test" in detail and "Attempt 1" in detail and " ms" in detail
    assert signed_in.post(f"{page_url}/deliveries/{delivery.id}/resend").status_code == 303
    with app.app_context():
        assert WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id).count() == 2
        actions = [e.action for e in AuditEvent.select().where(AuditEvent.action.startswith("webhook."))]
    assert actions == ["webhook.created"]


def test_rotate_disable_enable_and_delete_are_audited(app, signed_in, org):
    _add(signed_in, org, "http://127.0.0.1:9/hook")
    endpoint = _endpoint(app)
    page_url = f"/developer/apps/{org.app_id}/webhooks/{endpoint.public_id}"
    rotated = signed_in.post(f"{page_url}/rotate", htmx=True)
    assert rotated.headers["Cache-Control"] == "no-store" and SECRET_RE.search(rotated.get_data(as_text=True))
    assert "previous secret also signs" in rotated.get_data(as_text=True)
    assert ">Enable<" in signed_in.post(f"{page_url}/enabled", {"enabled": "0"}, htmx=True).get_data(as_text=True)
    assert ">Disable<" in signed_in.post(f"{page_url}/enabled", {"enabled": "1"}, htmx=True).get_data(as_text=True)
    ask = signed_in.post(f"{page_url}/delete")
    assert ask.status_code == 200 and "Delete this endpoint?" in ask.get_data(as_text=True)
    assert _endpoint(app) is not None  # asking deleted nothing
    done = signed_in.post(f"{page_url}/delete", {"confirmed": "1"})
    assert done.status_code == 303
    assert _endpoint(app) is None
    with app.app_context():
        actions = [e.action for e in AuditEvent.select().where(AuditEvent.action.startswith("webhook."))
                   .order_by(AuditEvent.id)]
    assert actions == ["webhook.created", "webhook.secret_rotated", "webhook.disabled", "webhook.enabled",
                       "webhook.deleted"]


def test_a_bad_url_is_refused_with_a_message(app, signed_in, org):
    refused = _add(signed_in, org, "http://1.1.1.1/hook", mode="prod")
    assert refused.status_code == 422 and "must start with https://" in refused.get_data(as_text=True)
    refused = _add(signed_in, org, "https://127.0.0.1/hook", mode="prod")
    assert refused.status_code == 422 and "loopback" in refused.get_data(as_text=True)
    refused = _add(signed_in, org, "http://127.0.0.1:9/hook", types=["nope"])
    assert refused.status_code == 422 and "Unknown event type" in refused.get_data(as_text=True)
    assert _endpoint(app) is None


def test_the_application_page_shows_a_banner_when_the_platform_disabled_an_endpoint(app, signed_in, org):
    with Receiver() as receiver:
        _add(signed_in, org, receiver.url("/gone"))
        with app.app_context():
            application = Application.get(Application.app_id == org.app_id)
            events.emit(application, "test", "member.created", {"object": "member"})
        _deliver(app)
    page = signed_in.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert "Endpoint disabled:" in page and "410 Gone" in page
    endpoint_page = signed_in.get(f"/developer/apps/{org.app_id}/webhooks/{_endpoint(app).public_id}")
    assert "This endpoint was disabled." in endpoint_page.get_data(as_text=True)


def test_developers_manage_test_endpoints_only_and_viewers_none(app, org):
    owner = PortalClient(app.test_client())
    owner.login(org.email)
    _add(owner, org, "https://1.1.1.1/hook", mode="prod")
    prod = _endpoint(app)
    developer = teammate(app, org, "developer")[1]
    form = developer.get(f"/developer/apps/{org.app_id}/webhooks/new").get_data(as_text=True)
    assert "> Production</label>" not in form
    assert _add(developer, org, "https://1.0.0.1/hook", mode="prod").status_code == 403
    assert _add(developer, org, "http://127.0.0.1:9/hook").status_code == 200
    prod_url = f"/developer/apps/{org.app_id}/webhooks/{prod.public_id}"
    page = developer.get(prod_url).get_data(as_text=True)
    assert ">Send test event<" not in page and ">Rotate secret<" not in page
    for action in ("test", "rotate", "delete"):
        assert developer.post(f"{prod_url}/{action}", {"confirmed": "1"}).status_code == 403
    viewer = teammate(app, org, "viewer")[1]
    assert "webhooks-title" not in viewer.get(f"/developer/apps/{org.app_id}").get_data(as_text=True)
    assert viewer.get(prod_url).status_code == 403
    with app.app_context():
        assert WebhookEndpoint.get_by_id(prod.id).secret_ciphertext == prod.secret_ciphertext


def test_another_partners_endpoint_is_404(app, signed_in, org):
    rival = make_org(app, "owner@rival.example", "Rival Roasters")
    rival_client = PortalClient(app.test_client())
    rival_client.login(rival.email)
    _add(rival_client, rival, "http://127.0.0.1:9/hook")
    theirs = _endpoint(app)
    assert signed_in.get(f"/developer/apps/{rival.app_id}/webhooks/{theirs.public_id}").status_code == 404
    assert signed_in.get(f"/developer/apps/{org.app_id}/webhooks/{theirs.public_id}").status_code == 404
    assert signed_in.post(f"/developer/apps/{org.app_id}/webhooks/{theirs.public_id}/delete",
                          {"confirmed": "1"}).status_code == 404
    assert _endpoint(app) is not None


def test_a_delivery_id_that_cannot_be_a_row_is_404(app, signed_in, org):
    _add(signed_in, org, "http://127.0.0.1:9/hook")
    base = f"/developer/apps/{org.app_id}/webhooks/{_endpoint(app).public_id}/deliveries"
    for delivery_id in ("9" * 30, "0", "x"):
        assert signed_in.get(f"{base}/{delivery_id}").status_code == 404
        assert signed_in.post(f"{base}/{delivery_id}/resend").status_code == 404


def test_the_signing_secret_is_stored_encrypted(app, signed_in, org):
    html = _add(signed_in, org, "http://127.0.0.1:9/hook").get_data(as_text=True)
    secret = SECRET_RE.search(html).group(0)
    endpoint = _endpoint(app)
    assert secret not in endpoint.secret_ciphertext and secret[6:] not in endpoint.secret_ciphertext
