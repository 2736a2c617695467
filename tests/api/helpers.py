"""Signing for tests: sign any request, for the Flask test client or for `requests`.

The signing is the SDK's (`loyalty_sdk.canonical_string` and its signature), not the
server's `portal.signing`: the SDK is its own distribution and never imports the server
(tests/sdk/test_packaging.py checks), and both are checked against
tests/signing-vectors.json (tests/sdk/test_signing.py and tests/api/test_signing_vectors.py),
so a server bug cannot hide behind a shared helper.

Flask test client (fixture `api` in tests/api/conftest.py gives you one ready-made):

    creds = create_credentials(app, scopes=["stamps_read"], mode="test")   # a partner, app and key
    api = SignedClient(client, creds)
    res = api.post("/v1/members", json={"email": "ana@example.com"})
    res = api.get("/v1/members?limit=5", headers={"X-Loyalty-Nonce": "x" * 16})  # override a header
    res = api.request("POST", "/v1/members", data=b"raw", content_type="text/plain")
    res = api.get("/v1/key", sign=False)   # only Authorization and X-Loyalty-App-Id

`requests` against `live_server`:

    demo = live_server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    requests.get(live_server.url + "/v1/key", auth=auth)

`sign(method, path_and_query, body, app_id=, app_secret=, timestamp=, nonce=)` returns the
four X-Loyalty-* headers for anything else (schemathesis, benchmarks). Unlike
`loyalty_sdk.sign` it also signs a timestamp or nonce of the wrong shape, which the gate
tests send on purpose.
"""

from __future__ import annotations

import json as jsonlib
import secrets
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import requests
from loyalty_sdk import canonical_string
from loyalty_sdk.signing import new_nonce, signature_header

ALL_SCOPES = (
    "member_read", "member_write", "card_read", "claim_write", "referral_read",
    "referral_write", "stamps_read", "stamps_write", "cashback_read", "cashback_write",
)


def canonical(method: str, path_and_query: str, body: bytes, *, app_id: str, timestamp, nonce: str) -> str:
    """The canonical string of DESIGN.md §4 for a path with its (raw) query."""
    return canonical_string(method, path_and_query, body, app_id=app_id, timestamp=timestamp, nonce=nonce)


def sign(method: str, path_and_query: str, body: bytes | None, *, app_id: str, app_secret: str,
         timestamp=None, nonce: str | None = None) -> dict:
    """The X-Loyalty-App-Id/-Timestamp/-Nonce/-Signature headers for one request."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or new_nonce()
    text = canonical(method, path_and_query, body or b"", app_id=app_id, timestamp=timestamp, nonce=nonce)
    return {
        "X-Loyalty-App-Id": app_id,
        "X-Loyalty-Timestamp": str(timestamp),
        "X-Loyalty-Nonce": nonce,
        "X-Loyalty-Signature": signature_header(app_secret, text),
    }


@dataclass(frozen=True)
class Credentials:
    """What a partner's code holds: App ID, App Secret and one API key."""

    app_id: str
    app_secret: str
    api_key: str
    partner_id: int | None = None

    def with_key(self, api_key: str) -> "Credentials":
        return replace(self, api_key=api_key)


# Nothing logs in as the partners API tests make (they only call the API), so their owner
# gets no password: the stored value is no password hash at all, and hashing costs nothing.
NO_PASSWORD = "!no password: made by tests/api/helpers.py"


def create_credentials(app, *, scopes=ALL_SCOPES, mode: str = "test", expires_in=None,
                       business: str = "Test Shop") -> Credentials:
    """A new partner with one application and one key (runs in `app`'s context)."""
    from portal.domain.applications import create_application, issue_api_key
    from portal.models import Partner, User

    with app.app_context():
        partner = Partner.create(name=business)
        user = User.create(partner=partner, email=f"owner-{secrets.token_hex(4)}@example.com",
                           password_hash=NO_PASSWORD, role="owner")
        application, secret = create_application(partner, "Test app", by=user)
        _, key = issue_api_key(application, name="test key", mode=mode, scopes=scopes, expires_in=expires_in)
        return Credentials(application.app_id, secret, key, partner.id)


def add_key(app, creds: Credentials, *, scopes=ALL_SCOPES, mode: str = "test", expires_in=None) -> Credentials:
    """Another key of the same application (returns credentials using it)."""
    from portal.domain.applications import issue_api_key
    from portal.models import Application

    with app.app_context():
        application = Application.get(Application.app_id == creds.app_id)
        _, key = issue_api_key(application, name="extra key", mode=mode, scopes=scopes, expires_in=expires_in)
    return creds.with_key(key)


class SignedClient:
    """Flask test client that signs every request with `creds` (a fresh nonce each time)."""

    def __init__(self, client, creds: Credentials):
        self.client = client
        self.creds = creds

    def request(self, method: str, path: str, *, json=None, data: bytes | str | None = None,
                headers: dict | None = None, content_type: str | None = None, sign_request: bool = True,
                timestamp=None, nonce=None, secret: str | None = None):
        """Send one signed request; `headers` override or (value None) remove headers."""
        if json is not None:
            data = jsonlib.dumps(json, separators=(",", ":")).encode()
            content_type = content_type or "application/json"
        if isinstance(data, str):
            data = data.encode()
        body = data or b""
        final = {"Authorization": f"Bearer {self.creds.api_key}", "X-Loyalty-App-Id": self.creds.app_id}
        if sign_request:
            final.update(sign(method, path, body, app_id=self.creds.app_id,
                              app_secret=secret or self.creds.app_secret, timestamp=timestamp, nonce=nonce))
        if content_type:
            final["Content-Type"] = content_type
        for name, value in (headers or {}).items():
            if value is None:
                final.pop(name, None)
            else:
                final[name] = value
        return self.client.open(path, method=method, data=body, headers=final)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)


class SignedAuth(requests.auth.AuthBase):
    """`requests` auth that adds the API key and signs the prepared request."""

    def __init__(self, app_id: str, app_secret: str, api_key: str):
        self.app_id = app_id
        self.app_secret = app_secret
        self.api_key = api_key

    def __call__(self, prepared):
        parts = urlsplit(prepared.url)
        path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        prepared.headers["Authorization"] = f"Bearer {self.api_key}"
        prepared.headers.update(sign(prepared.method, path_and_query, body,
                                     app_id=self.app_id, app_secret=self.app_secret))
        return prepared


def error_of(response) -> dict:
    """The `error` object of an API error response (works for Flask and requests)."""
    data = response.get_json() if hasattr(response, "get_json") else response.json()
    return data["error"]
