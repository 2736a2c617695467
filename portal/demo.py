"""`loyalty-portal demo`: a partner, its program, an application and keys to try things with."""

from __future__ import annotations

import secrets

from portal.accounts import create_partner_account
from portal.applications import create_application, issue_api_key
from portal.scopes import SCOPE_NAMES


def create_demo() -> dict:
    """Create a fresh demo partner (a new email each run) and return its credentials."""
    suffix = secrets.token_hex(3)
    email = f"demo-{suffix}@example.com"
    password = secrets.token_urlsafe(12)
    user = create_partner_account("Demo Coffee", email, password, via="demo")
    app, app_secret = create_application(user.partner, "Demo app", by=user)
    _, test_key = issue_api_key(app, name="Demo test key", mode="test", scopes=SCOPE_NAMES, by=user)
    _, prod_key = issue_api_key(app, name="Demo prod key", mode="prod", scopes=SCOPE_NAMES, by=user)
    return {
        "email": email, "password": password, "app_id": app.app_id, "app_secret": app_secret,
        "test_key": test_key, "prod_key": prod_key,
    }
