"""Key guardrails in the portal (DESIGN.md §13): "Allowed IPs" and "Requests per minute" in
the key form and the key row's "Edit", audited; "Exposed" and "Expires in N days" in the
row; banners on the home and application pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from portal_helpers import count, key_row

from portal.models import ApiKey, AuditEvent, User, utcnow


def text(response) -> str:
    return response.get_data(as_text=True)


def app_url(org, rest=""):
    return f"/developer/apps/{org.app_id}{rest}"


def key_form(**overrides):
    form = {"name": "Till", "mode": "test", "scopes": ["stamps_read"], "expires": "never"}
    form.update(overrides)
    return form


def created_key(app, name="Till") -> ApiKey:
    with app.app_context():
        return ApiKey.get(ApiKey.name == name)


def test_create_key_form_has_allowed_ips_and_requests_per_minute(signed_in, org):
    page = text(signed_in.get(app_url(org, "/keys/new")))
    assert '<label for="key-allowed-ips">Allowed IPs</label>' in page
    assert '<label for="key-rate-limit">Requests per minute</label>' in page


def test_a_key_created_with_allowed_ips_and_a_limit_keeps_them_normalised(app, signed_in, org):
    response = signed_in.post(app_url(org, "/keys"), key_form(
        allowed_ips="203.0.113.7\n198.51.100.0/24\r\n 2001:db8::/32 \n203.0.113.7", rate_limit="120"), htmx=True)
    assert response.status_code == 200
    key = created_key(app)
    assert key.allowed_ip_list == ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"]
    assert key.rate_limit == 120
    assert "Allowed from 203.0.113.7, 198.51.100.0/24, 2001:db8::/32 · 120 requests/min" in text(response)


@pytest.mark.parametrize("overrides, message", [
    ({"allowed_ips": "203.0.113.0/33"}, "“203.0.113.0/33” is not an IP address or CIDR range"),
    ({"allowed_ips": "not-an-address"}, "is not an IP address or CIDR range"),
    ({"allowed_ips": "1.2.3.4\n" * 60}, "at most 50"),
    ({"rate_limit": "0"}, "at least 1"),
    ({"rate_limit": "-5"}, "at least 1"),
    ({"rate_limit": "601"}, "At most 600 requests per minute for a test key"),
    ({"rate_limit": "1000000000"}, "At most 600 requests per minute"),
    ({"rate_limit": "ten"}, "Enter a whole number"),
    ({"rate_limit": "²"}, "Enter a whole number"),  # a digit to str.isdigit, not to int()
    ({"rate_limit": "٣٠"}, "Enter a whole number"),
])
def test_bad_guardrails_show_a_clear_message_and_issue_nothing(app, signed_in, org, overrides, message):
    before = count(app, ApiKey)
    for htmx in (False, True):
        response = signed_in.post(app_url(org, "/keys"), key_form(**overrides), htmx=htmx)
        assert message in text(response)
        assert response.status_code == (200 if htmx else 422)
    assert count(app, ApiKey) == before


def test_anywhere_ranges_are_accepted_and_said_to_mean_anywhere(app, signed_in, org):
    response = signed_in.post(app_url(org, "/keys"), key_form(allowed_ips="0.0.0.0/0"), htmx=True)
    assert "0.0.0.0/0 means anywhere (for IPv4)" in text(response)
    assert created_key(app).allowed_ip_list == ["0.0.0.0/0"]


def test_edit_opens_in_the_row_and_saves_allowed_ips_with_an_audit_entry(app, signed_in, org):
    form = signed_in.get(app_url(org, f"/keys/{org.key_id}/edit"), htmx=True)
    assert form.status_code == 200 and text(form).lstrip().startswith(f'<tr id="key-{org.key_id}"')
    assert "Allowed IPs" in text(form) and ">Save</button>" in text(form)
    saved = signed_in.post(app_url(org, f"/keys/{org.key_id}/edit"),
                           {"allowed_ips": "10.0.0.0/8", "rate_limit": "60"}, htmx=True)
    assert saved.status_code == 200 and "Allowed from 10.0.0.0/8 · 60 requests/min" in text(saved)
    key = key_row(app, org.key_id)
    assert key.allowed_ips == "10.0.0.0/8" and key.rate_limit == 60
    with app.app_context():
        entry = AuditEvent.get(AuditEvent.action == "key.guardrails_changed")
        assert entry.target == key.masked and "10.0.0.0/8" in entry.detail and "60/min" in entry.detail
        assert org.key_plaintext not in entry.detail


def test_edit_without_js_redirects_back_and_a_bad_range_keeps_the_old_value(app, signed_in, org):
    assert signed_in.get(app_url(org, f"/keys/{org.key_id}/edit")).status_code == 200
    saved = signed_in.post(app_url(org, f"/keys/{org.key_id}/edit"), {"allowed_ips": "192.0.2.1"})
    assert saved.status_code == 303
    bad = signed_in.post(app_url(org, f"/keys/{org.key_id}/edit"), {"allowed_ips": "192.0.2.300"})
    assert bad.status_code == 422 and "is not an IP address" in text(bad)
    # The message is tied to its field, as in the create form (screen readers announce it).
    field = f"key-{org.key_id}-allowed-ips"
    assert f'aria-describedby="{field}-hint {field}-error" aria-invalid="true"' in text(bad)
    assert f'id="{field}-error">' in text(bad)
    assert key_row(app, org.key_id).allowed_ips == "192.0.2.1"


def test_edit_without_csrf_changes_nothing(app, signed_in, org):
    for htmx in (False, True):
        response = signed_in.post(app_url(org, f"/keys/{org.key_id}/edit"), {"allowed_ips": "192.0.2.1"},
                                  htmx=htmx, csrf=False)
        assert response.status_code == 400
    assert key_row(app, org.key_id).allowed_ips == ""


def test_a_developer_sets_allowed_ips_but_not_the_rate_limit(app, signed_in, org):
    with app.app_context():
        User.update(role="developer").where(User.id == org.user_id).execute()
    page = text(signed_in.get(app_url(org, f"/keys/{org.key_id}/edit"), htmx=True))
    assert "Allowed IPs" in page and "Requests per minute" not in page
    signed_in.post(app_url(org, f"/keys/{org.key_id}/edit"), {"allowed_ips": "192.0.2.1", "rate_limit": "1"},
                   htmx=True)
    key = key_row(app, org.key_id)
    assert key.allowed_ips == "192.0.2.1" and key.rate_limit is None


def test_another_partners_key_cannot_be_edited(app, signed_in, org, other_org):
    response = signed_in.post(f"/developer/apps/{other_org.app_id}/keys/{other_org.key_id}/edit",
                              {"allowed_ips": "192.0.2.1"})
    assert response.status_code == 404
    assert key_row(app, other_org.key_id).allowed_ips == ""


def test_an_exposed_key_shows_exposed_with_its_source_and_a_banner(app, signed_in, org):
    with app.app_context():
        ApiKey.update(revoked_at=utcnow(), exposed_at=utcnow(),
                      exposed_source="https://github.com/example/shop/blob/main/.env").where(
            ApiKey.id == org.key_id).execute()
    for url in (app_url(org), "/"):
        page = text(signed_in.get(url))
        assert "1 API key reported exposed and revoked" in page
        assert "https://github.com/example/shop/blob/main/.env" in page
    row = text(signed_in.get(app_url(org)))
    assert ">Exposed</span>" in row and "Found at https://github.com/example/shop/blob/main/.env" in row


def test_a_key_expiring_within_7_days_shows_expires_in_n_days_and_a_banner(app, signed_in, org):
    with app.app_context():
        ApiKey.update(expires_at=utcnow() + timedelta(days=3, hours=1)).where(ApiKey.id == org.key_id).execute()
    page = text(signed_in.get(app_url(org)))
    assert "Expires in 4 days" in page
    assert "1 API key expires within 7 days" in page
    assert "1 API key expires within 7 days" in text(signed_in.get("/"))


def test_a_key_expiring_later_shows_no_reminder(app, signed_in, org):
    with app.app_context():
        ApiKey.update(expires_at=utcnow() + timedelta(days=20)).where(ApiKey.id == org.key_id).execute()
    page = text(signed_in.get(app_url(org)))
    assert "Expires in" not in page and "within 7 days" not in page


def test_a_key_id_that_cannot_be_a_row_is_404_not_an_error(app, signed_in, org):
    for key_id in ("9" * 30, "0", "-1", "x"):
        assert signed_in.get(app_url(org, f"/keys/{key_id}/edit")).status_code == 404
