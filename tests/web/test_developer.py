"""The Developer area: applications, App Secrets and API keys, over htmx and without JS."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

import pytest
from portal_helpers import count, key_row

from portal.api.gate import valid_secrets
from portal.config import current_settings
from portal.credentials import APP_ID_RE, APP_SECRET_RE, parse_api_key
from portal.models import ApiKey, Application, AppSecret, AuditEvent, utcnow

KEY_RE = re.compile(r"(?:test|prod)_sk_[A-Za-z0-9]{38}")
SECRET_RE = re.compile(r"secret_[A-Za-z0-9]{32}")


def text(response) -> str:
    return response.get_data(as_text=True)


def app_url(org, rest=""):
    return f"/developer/apps/{org.app_id}{rest}"


def key_form(**overrides):
    form = {"name": "Till", "mode": "test", "scopes": ["stamps_read", "card_read"], "expires": "never"}
    form.update(overrides)
    return form


def assert_session_holds_no(portal, plaintext):
    with portal.client.session_transaction() as session:
        assert plaintext not in repr(dict(session))


# -- pages --------------------------------------------------------------------------------


def test_developer_lists_the_partners_applications_only(signed_in, org, other_org):
    page = text(signed_in.get("/developer"))
    assert org.app_id in page
    assert other_org.app_id not in page
    assert "New application" in page


def test_application_page_shows_app_id_masked_secret_keys_and_sdk_snippet(signed_in, org):
    page = text(signed_in.get(app_url(org)))
    assert APP_ID_RE.match(org.app_id) and org.app_id in page
    assert f"secret_…{org.app_secret[-4:]}" in page
    assert org.app_secret not in page and org.key_plaintext not in page
    masked = f"test_sk_{org.key_plaintext[8:12]}…{org.key_plaintext[-4:]}"
    assert masked in page
    for column in ("Key", "Scopes", "Created", "Expires", "Last used", "Status"):
        assert f">{column}</th>" in page
    assert "stamps_read" in page and "stamps_write" in page and ">Test<" in page
    assert "Never used" in page and "Active" in page
    assert "Key rotation" in page
    assert 'pip install &#34;loyalty-sdk @ http://localhost/sdk/loyalty_sdk-' in page
    assert "not an extra index" in page and "pip install ./sdk" not in page
    assert f'app_id="{org.app_id}"' in page
    assert 'os.environ["LOYALTY_APP_SECRET"]' in page and 'os.environ["LOYALTY_API_KEY"]' in page
    assert "LoyaltyClient.from_env()" in page
    assert "24 hours" in page  # the default grace period for a regenerated secret is stated


def test_home_and_docs_pages_render_for_a_signed_in_partner(signed_in):
    home = text(signed_in.get("/"))
    assert "Getting started" in home and 'href="/program"' in home and 'href="/docs/api"' in home
    docs = text(signed_in.get("/docs"))
    for scope in ("member_read", "member_write", "card_read", "claim_write", "referral_read",
                  "referral_write", "stamps_read", "stamps_write", "cashback_read", "cashback_write"):
        assert scope in docs
    assert "Rotating a key" in docs


# -- applications -------------------------------------------------------------------------


def test_new_application_form_opens_inline_for_htmx_and_as_a_page_without_js(signed_in):
    partial = signed_in.get("/developer/apps/new", htmx=True)
    assert "Application name" in text(partial) and "<html" not in text(partial)
    page = signed_in.get("/developer/apps/new")
    assert "Application name" in text(page) and "<html" in text(page)


def test_create_application_without_js_renders_the_secret_once(app, signed_in):
    response = signed_in.post("/developer/apps", {"name": "Till app"})
    page = text(response)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET_RE.search(page).group(0)
    assert APP_SECRET_RE.match(secret)
    app_id = re.search(r"app_[a-z0-9]{16}", page).group(0)
    with app.app_context():
        application = Application.get(Application.app_id == app_id)
        assert valid_secrets(application.id) == [secret]
    reload = text(signed_in.get(f"/developer/apps/{app_id}"))
    assert secret not in reload and f"secret_…{secret[-4:]}" in reload
    assert_session_holds_no(signed_in, secret)
    assert secret not in response.headers.get("Set-Cookie", "")


def test_create_application_over_htmx_swaps_the_main_area_and_pushes_its_url(app, signed_in):
    response = signed_in.post("/developer/apps", {"name": "Till app"}, htmx=True)
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "<html" not in page and SECRET_RE.search(page)
    app_id = re.search(r"app_[a-z0-9]{16}", page).group(0)
    assert response.headers["HX-Push-Url"] == f"/developer/apps/{app_id}"
    assert response.headers["HX-Retarget"] == "#main"
    assert 'hx-swap-oob="true"' in page and "created" in page
    assert SECRET_RE.search(page).group(0) not in text(signed_in.get(f"/developer/apps/{app_id}"))


def test_create_application_without_csrf_token_changes_nothing(app, signed_in):
    before = count(app, Application)
    for htmx in (False, True):
        response = signed_in.post("/developer/apps", {"name": "Till app"}, htmx=htmx, csrf=False)
        assert response.status_code == 400
        assert "did not come from this site" in text(response)
    assert count(app, Application) == before


@pytest.mark.parametrize("name, message", [("", "Enter a application name"), ("x" * 81, "at most 80 characters"),
                                           ("x" * 10_000, "too long")])
def test_create_application_with_a_bad_name_shows_the_message(app, signed_in, name, message):
    before = count(app, Application)
    plain = signed_in.post("/developer/apps", {"name": name})
    assert plain.status_code == 422 and message in text(plain)
    htmx = signed_in.post("/developer/apps", {"name": name}, htmx=True)
    assert htmx.status_code == 200 and message in text(htmx) and "<html" not in text(htmx)
    assert count(app, Application) == before


# -- App Secret ---------------------------------------------------------------------------


def test_regenerate_secret_without_js_shows_the_new_one_once_and_keeps_the_old_valid(app, signed_in, org):
    response = signed_in.post(app_url(org, "/secret"), {"grace": "24h"})
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    new_secret = SECRET_RE.search(page).group(0)
    assert new_secret != org.app_secret
    with app.app_context():
        application = Application.get(Application.app_id == org.app_id)
        assert set(valid_secrets(application.id)) == {new_secret, org.app_secret}
    reload = text(signed_in.get(app_url(org)))
    assert new_secret not in reload
    assert f"secret_…{org.app_secret[-4:]}" in reload and "keeps working until" in reload
    assert_session_holds_no(signed_in, new_secret)


def test_regenerate_secret_over_htmx_swaps_the_credentials_section(app, signed_in, org):
    response = signed_in.post(app_url(org, "/secret"), {"grace": "now"}, htmx=True)
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert page.lstrip().startswith('<section id="app-secret"')
    assert SECRET_RE.search(page) and "stopped working now" in page
    assert '<div id="new-key" hx-swap-oob="true"></div>' in page  # only one secret on screen
    with app.app_context():
        application = Application.get(Application.app_id == org.app_id)
        assert valid_secrets(application.id) == [SECRET_RE.search(page).group(0)]


def test_regenerate_secret_without_csrf_token_changes_nothing(app, signed_in, org):
    for htmx in (False, True):
        assert signed_in.post(app_url(org, "/secret"), {"grace": "24h"}, htmx=htmx, csrf=False).status_code == 400
    assert count(app, AppSecret) == 1
    with app.app_context():
        application = Application.get(Application.app_id == org.app_id)
        assert valid_secrets(application.id) == [org.app_secret]


def test_regenerate_secret_with_an_unknown_grace_period_is_refused(app, signed_in, org):
    response = signed_in.post(app_url(org, "/secret"), {"grace": "forever"})
    assert response.status_code == 422 and "Choose how long the previous secret keeps working" in text(response)
    with app.app_context():
        assert valid_secrets(Application.get(Application.app_id == org.app_id).id) == [org.app_secret]


# -- creating keys ------------------------------------------------------------------------


def test_create_key_form_has_every_control_the_design_names(signed_in, org):
    for htmx in (True, False):
        page = text(signed_in.get(app_url(org, "/keys/new"), htmx=htmx))
        assert ">Key name</label>" in page
        assert 'value="test" checked> Test</label>' in page and 'value="prod"> Production</label>' in page
        for scope in ("member_read", "cashback_write"):
            assert f'<label for="scope-{scope}"><code>{scope}</code></label>' in page
        for group in ("Member", "Card", "Claim", "Referral", "Stamps", "Cashback"):
            assert f">{group}</h4>" in page
        assert ">READ<" in page and ">WRITE<" in page and "Add stamps and redeem rewards" in page
        assert ">Expires</label>" in page
        for label in ("Never", "30 days", "90 days", "1 year"):
            assert f">{label}</option>" in page
        assert ">Create key</button>" in page


def test_create_key_over_htmx_shows_it_once_in_the_keys_section(app, signed_in, org):
    response = signed_in.post(app_url(org, "/keys"), key_form(expires="30d"), htmx=True)
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert page.lstrip().startswith('<section id="api-keys"')
    plaintext = KEY_RE.search(page).group(0)
    assert parse_api_key(plaintext) == "test"
    assert 'aria-label="New API key"' in page and ">Copy</button>" in page
    assert 'hx-swap-oob="true"' in page and "shown only once" in page
    with app.app_context():
        key = ApiKey.get(ApiKey.name == "Till")
        assert key.scope_list == ["card_read", "stamps_read"]
        assert timedelta(days=29) < key.expires_at - utcnow() <= timedelta(days=30)
    assert plaintext not in text(signed_in.get(app_url(org)))
    assert_session_holds_no(signed_in, plaintext)


def test_create_key_without_js_renders_the_full_page_with_the_key_once(app, signed_in, org):
    response = signed_in.post(app_url(org, "/keys"), key_form(mode="prod"))
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "<html" in page
    plaintext = KEY_RE.search(page).group(0)
    assert plaintext.startswith("prod_sk_")
    assert plaintext not in text(signed_in.get(app_url(org)))
    assert_session_holds_no(signed_in, plaintext)


def test_create_key_without_csrf_token_changes_nothing(app, signed_in, org):
    before = count(app, ApiKey)
    for htmx in (False, True):
        response = signed_in.post(app_url(org, "/keys"), key_form(), htmx=htmx, csrf=False)
        assert response.status_code == 400 and "nothing was changed" in text(response)
        assert not KEY_RE.search(text(response))
    assert count(app, ApiKey) == before


@pytest.mark.parametrize("overrides, message", [
    ({"name": ""}, "Enter a key name."),
    ({"name": "n" * 81}, "at most 80 characters"),
    ({"name": "n" * 50_000}, "too long"),
    ({"scopes": []}, "Choose at least one scope."),
    ({"scopes": ["stamps_read", "root"]}, "Unknown scope root"),
    ({"mode": "live"}, "Choose Test or Production."),
    ({"expires": "forever"}, "Choose when the key expires."),
])
def test_create_key_with_a_bad_field_shows_its_message_and_issues_nothing(app, signed_in, org, overrides, message):
    before = count(app, ApiKey)
    plain = signed_in.post(app_url(org, "/keys"), key_form(**overrides))
    assert plain.status_code == 422 and message in text(plain)
    assert "Key name" in text(plain)  # the form stays open with its values
    htmx = signed_in.post(app_url(org, "/keys"), key_form(**overrides), htmx=True)
    assert htmx.status_code == 200 and message in text(htmx)
    assert count(app, ApiKey) == before


def test_an_oversized_request_body_is_refused_with_a_message(app, signed_in, org):
    response = signed_in.post(app_url(org, "/keys"), key_form(name="n" * 100_000))
    assert response.status_code == 413
    assert "more data than this site accepts" in text(response)
    assert count(app, ApiKey) == 1


def test_key_creation_is_audited_without_the_key(app, signed_in, org):
    page = text(signed_in.post(app_url(org, "/keys"), key_form()))
    plaintext = KEY_RE.search(page).group(0)
    with app.app_context():
        events = list(AuditEvent.select().where(AuditEvent.action == "key.created"))
    assert events and all(plaintext not in (e.target + e.detail) for e in events)
    assert events[-1].ip == "127.0.0.1"


# -- rolling ------------------------------------------------------------------------------


def test_roll_form_opens_in_its_row_for_htmx_and_on_the_page_without_js(signed_in, org):
    partial = text(signed_in.get(app_url(org, f"/keys/{org.key_id}/roll"), htmx=True))
    assert partial.lstrip().startswith(f'<tr id="key-{org.key_id}"')
    for label in ("Old key expires", "Now", "1 hour", "24 hours", "7 days", "Roll key"):
        assert label in partial
    page = text(signed_in.get(app_url(org, f"/keys/{org.key_id}/roll")))
    assert "<html" in page and "Old key expires" in page
    closed = text(signed_in.get(app_url(org, f"/keys/{org.key_id}"), htmx=True))
    assert "Old key expires" not in closed and ">Roll</button>" in closed


def test_roll_over_htmx_issues_a_twin_and_sets_the_old_keys_expiry(app, signed_in, org):
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "1h"}, htmx=True)
    page = text(response)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert page.lstrip().startswith('<section id="api-keys"')
    plaintext = KEY_RE.search(page).group(0)
    assert plaintext != org.key_plaintext and 'aria-label="New API key"' in page
    with app.app_context():
        old = ApiKey.get_by_id(org.key_id)
        new = ApiKey.get(ApiKey.rolled_from == old)
        assert (new.name, new.mode, new.scope_list) == (old.name, old.mode, old.scope_list)
        assert timedelta(minutes=59) < old.expires_at - utcnow() <= timedelta(hours=1)
    assert plaintext not in text(signed_in.get(app_url(org)))
    assert_session_holds_no(signed_in, plaintext)


def test_roll_without_js_renders_the_page_with_the_new_key(app, signed_in, org):
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "now"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "<html" in text(response) and KEY_RE.search(text(response))
    assert key_row(app, org.key_id).status_at(utcnow()) == "expired"


def test_roll_without_csrf_token_changes_nothing(app, signed_in, org):
    for htmx in (False, True):
        response = signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "now"}, htmx=htmx, csrf=False)
        assert response.status_code == 400
    assert count(app, ApiKey) == 1 and key_row(app, org.key_id).expires_at is None


def test_roll_with_an_unknown_expiry_choice_is_refused(app, signed_in, org):
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "1y"})
    assert response.status_code == 422 and "Choose when the old key expires." in text(response)
    assert count(app, ApiKey) == 1


def test_rolling_a_revoked_key_says_why_and_issues_nothing(app, signed_in, org):
    signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"))
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "1h"}, htmx=True)
    assert "A revoked key cannot be rolled" in text(response) and not KEY_RE.search(text(response))
    assert count(app, ApiKey) == 1


# -- revoking -----------------------------------------------------------------------------


def test_revoke_over_htmx_updates_the_row_in_place(app, signed_in, org):
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"), htmx=True)
    page = text(response)
    assert response.status_code == 200
    assert page.lstrip().startswith(f'<tr id="key-{org.key_id}"')
    assert "Revoked" in page and ">Revoke</button>" not in page
    assert 'id="flashes" class="flashes" role="status" aria-live="polite" hx-swap-oob="true"' in page
    assert key_row(app, org.key_id).revoked_at is not None


def test_revoke_without_js_redirects_back_with_a_message(app, signed_in, org):
    response = signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"))
    assert response.status_code == 303
    assert response.location == f"/developer/apps/{org.app_id}#key-{org.key_id}"
    page = text(signed_in.get(response.location))
    assert "revoked. Calls made with it are refused" in page
    assert key_row(app, org.key_id).revoked_at is not None


def test_revoke_without_csrf_token_changes_nothing(app, signed_in, org):
    for htmx in (False, True):
        assert signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"), htmx=htmx, csrf=False).status_code == 400
    assert key_row(app, org.key_id).revoked_at is None


def test_revoking_a_revoked_key_changes_nothing_and_says_so(app, signed_in, org):
    signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"))
    first = key_row(app, org.key_id).revoked_at
    for htmx in (True, False):
        response = signed_in.post(app_url(org, f"/keys/{org.key_id}/revoke"), htmx=htmx)
        page = text(response) if htmx else text(signed_in.get(response.location))
        assert "was already revoked; nothing changed." in page
    assert key_row(app, org.key_id).revoked_at == first
    with app.app_context():
        assert AuditEvent.select().where(AuditEvent.action == "key.revoked").count() == 1


# -- sessions and htmx --------------------------------------------------------------------


@pytest.mark.parametrize("method, rest", [
    ("post", "/keys"), ("post", "/keys/{key}/revoke"), ("post", "/keys/{key}/roll"), ("post", "/secret"),
    ("get", "/keys/{key}/roll"), ("get", "/keys/new"),
])
def test_an_expired_session_on_an_htmx_request_redirects_to_log_in(app, org, method, rest):
    client = app.test_client()  # no session cookie: as after expiry
    url = app_url(org, rest.format(key=org.key_id))
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://localhost{app_url(org)}"}
    response = getattr(client, method)(url, headers=headers)
    assert response.headers["HX-Redirect"] == f"/login?next={app_url(org)}"
    assert "<table" not in text(response) and "Log in" not in text(response)
    assert count(app, ApiKey) == 1 and key_row(app, org.key_id).revoked_at is None


def test_every_page_carries_the_csrf_token_for_htmx_on_body(signed_in, org):
    page = text(signed_in.get(app_url(org)))
    assert f'hx-headers=\'{{"X-CSRF-Token": "{signed_in.token}"}}\'' in page
    assert '<script src="/static/htmx/htmx.min.js" defer></script>' in page


# -- other organisations ------------------------------------------------------------------

ROUTES = [
    ("get", "{app}"), ("post", "{app}/secret"), ("get", "{app}/keys"), ("get", "{app}/keys/new"),
    ("post", "{app}/keys"), ("get", "{app}/keys/{key}"), ("get", "{app}/keys/{key}/roll"),
    ("post", "{app}/keys/{key}/roll"), ("post", "{app}/keys/{key}/revoke"),
]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("method, route", ROUTES)
def test_another_organisations_application_or_key_is_404(app, signed_in, org, other_org, method, route, htmx):
    url = "/developer/apps/" + route.format(app=other_org.app_id, key=other_org.key_id)
    data = {"name": "x", "mode": "test", "scopes": ["card_read"], "grace": "now", "old_expires": "now"}
    response = signed_in.get(url, htmx=htmx) if method == "get" else signed_in.post(url, data, htmx=htmx)
    assert response.status_code == 404
    assert other_org.app_id not in text(response) and "Rival" not in text(response)
    with app.app_context():
        assert ApiKey.select().join(Application).where(Application.app_id == other_org.app_id).count() == 1
        assert key_row(app, other_org.key_id).revoked_at is None
        assert valid_secrets(Application.get(Application.app_id == other_org.app_id).id) == [other_org.app_secret]


@pytest.mark.parametrize("method, route", [r for r in ROUTES if "{key}" in r[1]])
@pytest.mark.parametrize("key_id", ["own-key-under-other-app", "999999", "not-a-number", "1%20OR%201=1"])
def test_a_key_id_that_is_not_this_applications_is_404(app, signed_in, org, other_org, method, route, key_id):
    if key_id == "own-key-under-other-app":  # the partner's own key, addressed through a foreign app
        url = "/developer/apps/" + route.format(app=other_org.app_id, key=org.key_id)
    else:  # a foreign key id under the partner's own app, or garbage
        url = "/developer/apps/" + route.format(app=org.app_id, key=key_id)
    response = signed_in.get(url) if method == "get" else signed_in.post(url, {"old_expires": "now"})
    assert response.status_code == 404


def test_foreign_key_id_under_own_application_is_404(signed_in, org, other_org):
    response = signed_in.post(app_url(org, f"/keys/{other_org.key_id}/revoke"))
    assert response.status_code == 404


# -- storage ------------------------------------------------------------------------------


def test_the_database_files_hold_no_plaintext_key_or_secret(app, signed_in, org):
    data_dir = current_settings().data_dir
    # An open reader keeps the WAL file in place (the last connection to close removes it).
    reader = sqlite3.connect(data_dir / "loyalty.db")
    reader.execute("SELECT count(*) FROM api_key").fetchone()
    shown = {org.app_secret, org.key_plaintext}
    shown |= set(SECRET_RE.findall(text(signed_in.post(app_url(org, "/secret"), {"grace": "1h"}))))
    shown |= set(KEY_RE.findall(text(signed_in.post(app_url(org, "/keys"), key_form()))))
    shown |= set(KEY_RE.findall(text(signed_in.post(app_url(org, f"/keys/{org.key_id}/roll"), {"old_expires": "1h"}))))
    assert len(shown) == 5
    files = [p for p in data_dir.iterdir() if p.name.startswith("loyalty.db")]
    assert any(p.name.endswith("-wal") and p.stat().st_size > 0 for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    assert len(blob) > 0
    for plaintext in shown:
        assert plaintext.encode() not in blob
        assert plaintext[8:].encode() not in blob  # not even without its prefix
    reader.close()
