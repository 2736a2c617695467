"""Shared portal behaviour: error pages, security headers, htmx plumbing."""

from __future__ import annotations

import peewee
import pytest

from portal import create_app, db
from portal.web.permissions import PUBLIC, ROUTE_ROLES


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def failing_app(tmp_path, monkeypatch):
    """An app with two (public) routes that fail the way real code can."""
    monkeypatch.setitem(ROUTE_ROLES, "boom", PUBLIC)
    monkeypatch.setitem(ROUTE_ROLES, "db_down", PUBLIC)
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    with app.app_context():
        db.migrate()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret_internal_detail in a traceback")

    @app.get("/db-down")
    def db_down():
        raise peewee.OperationalError("unable to open database file /srv/secret/path")

    yield app
    db.database.close()


def test_unknown_page_is_an_html_404_without_details(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in text(response)


def test_wrong_method_is_an_html_405(client):
    response = client.put("/login")
    assert response.status_code in (400, 405)  # a PUT without a token is refused before routing
    response = client.get("/logout")
    assert response.status_code == 405 and "does not accept that kind of request" in text(response)


def test_an_unexpected_error_is_a_500_page_without_a_traceback(failing_app):
    response = failing_app.test_client().get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in text(response)
    assert "Traceback" not in text(response) and "secret_internal_detail" not in text(response)


def test_an_unavailable_database_is_a_503_page(failing_app):
    response = failing_app.test_client().get("/db-down")
    assert response.status_code == 503
    assert "cannot reach its database" in text(response)
    assert "/srv/secret/path" not in text(response)
    assert response.headers["Retry-After"] == "1"
    assert "portal.css" in text(response) and "Try again" in text(response)  # the portal's page


def test_an_unavailable_database_on_an_htmx_request_is_a_message(failing_app):
    response = failing_app.test_client().get("/db-down", headers={"HX-Request": "true"})
    assert response.status_code == 503 and response.headers["HX-Reswap"] == "none"
    assert 'hx-swap-oob="true"' in text(response) and "cannot reach its database" in text(response)


def test_an_error_on_an_htmx_request_is_a_message_out_of_band(failing_app):
    response = failing_app.test_client().get("/boom", headers={"HX-Request": "true"})
    assert response.status_code == 500
    assert response.headers["HX-Reswap"] == "none"
    assert 'hx-swap-oob="true"' in text(response) and "<html" not in text(response)


def test_oversized_body_is_a_413_page(client):
    client.get("/login")
    response = client.post("/login", data={"email": "x" * 100_000})
    assert response.status_code == 413
    assert "more data than this site accepts" in text(response)


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_every_kind_of_answer_carries_each_security_header_once(client):
    """Portal pages, API answers (a refusal included) and /healthz: each header once."""
    from portal.headers import SECURITY_HEADERS

    for response in (client.get("/login"), client.get("/v1/members"), client.get("/v1/openapi.json"),
                     client.get("/healthz"), client.head("/healthz"), client.get("/no-such-page")):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.getlist(name) == [value], (response.request.path, name)
        assert response.headers["X-Request-Id"].startswith("req_")


def test_pages_load_no_third_party_resources(client):
    page = text(client.get("/signup"))
    assert "http://" not in page and "https://" not in page


def test_htmx_and_the_stylesheet_are_served_by_the_app(client):
    htmx = client.get("/static/htmx/htmx.min.js")
    assert htmx.status_code == 200 and b"htmx" in htmx.data
    css = client.get("/static/portal.css")
    assert css.status_code == 200 and b"--accent" in css.data
    assert client.get("/static/portal.js").status_code == 200


def test_htmx_is_configured_to_keep_no_history_snapshots(client):
    page = text(client.get("/login"))
    assert "&#34;historyCacheSize&#34;: 0" in page or '"historyCacheSize": 0' in page


def test_signed_in_pages_are_not_cached(client, app):
    from portal_helpers import PortalClient, make_org
    org = make_org(app, "cache@shop.example")
    portal = PortalClient(client)
    portal.login(org.email)
    assert portal.get("/developer").headers["Cache-Control"] == "no-store"


def test_the_sidebar_links_every_area(client, app):
    from portal_helpers import PortalClient, make_org
    org = make_org(app, "nav@shop.example")
    portal = PortalClient(client)
    portal.login(org.email)
    page = text(portal.get("/developer"))
    for href, label in (("/developer", "Developer"), ("/program", "Program"), ("/docs/api", "API docs"), ("/docs", "Docs")):
        assert f'href="{href}"' in page and f">{label}</a>" in page
    assert 'aria-current="page" class="active">Developer</a>' in page


def test_a_page_that_only_fills_title_and_content_gets_the_whole_layout(app, client):
    """Other areas (Program, API docs) extend base.html and fill just these two blocks."""
    from flask import render_template_string
    from flask_login import login_user
    from portal_helpers import make_org

    from portal.models import User

    org = make_org(app, "layout@shop.example")
    source = '{% extends "base.html" %}{% block title %}Program{% endblock %}{% block content %}<h1>Program</h1>{% endblock %}'
    with app.test_request_context("/program"):
        login_user(User.get_by_id(org.user_id))
        html = render_template_string(source)
    assert "<title>Program · Loyalty Partners</title>" in html
    assert 'aria-current="page" class="active">Program</a>' in html
    assert '<main id="main" tabindex="-1">' in html and "<h1>Program</h1>" in html
    assert "Log out" in html and 'id="flashes"' in html and "hx-headers=" in html


def test_a_route_without_a_rule_is_refused_for_everyone(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    with app.app_context():
        db.migrate()

    @app.get("/unruled")
    def unruled():
        return "should never be served"

    response = app.test_client().get("/unruled")
    assert response.status_code == 403 and "should never be served" not in text(response)
    db.database.close()
