"""Helpers for portal tests: accounts made through the domain functions, and a test client
that posts forms the way a browser (or htmx) does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from portal.domain.accounts import create_partner_account, passwords
from portal.domain.applications import create_application, issue_api_key
from portal.models import ApiKey, User

PASSWORD = "a long enough passphrase"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class PortalClient:
    """The Flask test client plus the CSRF token a browser would have from the last page."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def get(self, url, *, htmx=False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        response = self.client.get(url, headers=headers, **kwargs)
        match = _CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self.token = match.group(1)
        return response

    def post(self, url, data=None, *, htmx=False, csrf=True, **kwargs):
        """A form post. htmx sends the token as a header (from <body hx-headers>); a plain
        form sends the hidden field; csrf=False sends neither."""
        if csrf and self.token is None:
            self.get("/login")
        data = dict(data or {})
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
            if csrf:
                headers["X-CSRF-Token"] = self.token
        elif csrf:
            data["csrf_token"] = self.token
        return self.client.post(url, data=data, headers=headers, **kwargs)

    def login(self, email, password=PASSWORD):
        self.get("/login")
        response = self.post("/login", {"email": email, "password": password})
        assert response.status_code == 303, response.get_data(as_text=True)
        self.get("/")
        return response


@dataclass
class Org:
    email: str
    user_id: int
    partner_id: int
    app_id: str
    app_secret: str
    key_id: int
    key_plaintext: str


def make_org(app, email: str, business: str = "Corner Bakery") -> Org:
    """A partner with one application and one test key, made through the domain functions."""
    with app.app_context():
        user = create_partner_account(business, email, PASSWORD)
        application, secret = create_application(user.partner, "Web shop", by=user)
        key, plaintext = issue_api_key(application, name="Checkout", mode="test",
                                       scopes=["stamps_read", "stamps_write"], by=user)
        return Org(email, user.id, user.partner_id, application.app_id, secret, key.id, plaintext)


def count(app, model) -> int:
    """Rows of `model` in the app's database."""
    with app.app_context():
        return model.select().count()


def key_row(app, key_id) -> ApiKey:
    """A key's row as stored now."""
    with app.app_context():
        return ApiKey.get_by_id(key_id)


def teammate(app, org, role: str, email: str | None = None) -> tuple[User, PortalClient]:
    """A new user of `org` with `role`, and a client signed in as them."""
    email = email or f"{role}@bakery.example"
    with app.app_context():
        user = User.create(partner=org.partner_id, email=email, password_hash=passwords().hash(PASSWORD), role=role)
    client = PortalClient(app.test_client())
    client.login(email)
    return user, client
