"""Fixtures for API tests: `creds` (a partner, app and all-scopes test key) and `api`,
a SignedClient for the Flask test client. See tests/api/helpers.py for the signing."""

from __future__ import annotations

import pytest

from tests.api.helpers import SignedClient, create_credentials


@pytest.fixture
def creds(app):
    """A fresh partner with an application and a test-mode key carrying every scope."""
    return create_credentials(app)


@pytest.fixture
def api(client, creds):
    """The test client, signing every request with `creds`."""
    return SignedClient(client, creds)
