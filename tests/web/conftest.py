"""Fixtures for portal tests: a partner with an application and a key, a rival partner,
and a test client signed in as the first."""

from __future__ import annotations

import pytest
from portal_helpers import Org, PortalClient, make_org


@pytest.fixture
def org(app) -> Org:
    return make_org(app, "owner@bakery.example")


@pytest.fixture
def other_org(app) -> Org:
    return make_org(app, "owner@rival.example", "Rival Roasters")


@pytest.fixture
def portal(client) -> PortalClient:
    return PortalClient(client)


@pytest.fixture
def signed_in(portal, org) -> PortalClient:
    portal.login(org.email)
    return portal

