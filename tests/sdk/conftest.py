"""Fixtures for SDK tests: demo credentials on the live server and clients built from them.

The SDK is exercised against the real server (`live_server`, gunicorn on a loopback port
with a file database); `tests/sdk/proxy.py` sits in between when a test needs to count
requests or inject faults.
"""

from __future__ import annotations

import json

import pytest
from loyalty_sdk import LoyaltyClient

from tests.sdk.proxy import FaultProxy


@pytest.fixture(scope="session")
def demo(live_server) -> dict:
    """A demo partner shared by the SDK tests: app_id, app_secret, test_key, prod_key (every scope).

    Tests that write create their own members, so sharing one partner keeps them apart
    while saving a `loyalty-portal demo` run (seconds each) per test.
    """
    return live_server.demo()


@pytest.fixture(scope="session")
def stamps_read_key(live_server, demo) -> str:
    """A test key on the demo app carrying only `stamps_read`."""
    return create_key(live_server, demo["app_id"], "stamps_read")


@pytest.fixture
def make_client(live_server, demo):
    """Build clients on the demo credentials: `make_client(api_key=..., base_url=..., **options)`."""
    made: list[LoyaltyClient] = []

    def build(**overrides) -> LoyaltyClient:
        options = dict(app_id=demo["app_id"], app_secret=demo["app_secret"], api_key=demo["test_key"],
                       base_url=live_server.url, retry_backoff=0.01)
        options.update(overrides)
        client = LoyaltyClient(**options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def client(make_client) -> LoyaltyClient:
    """A test-mode client with every scope, straight to the live server."""
    return make_client()


@pytest.fixture
def proxy(live_server):
    """A recording, fault-injecting proxy in front of the live server."""
    with FaultProxy(live_server.url) as running:
        yield running


def create_key(live_server, app_id: str, *scopes: str, mode: str = "test") -> str:
    """A new key on `app_id` with only `scopes`, made with `loyalty-portal create-key`."""
    import json

    args = ["create-key", "--app", app_id, "--mode", mode, "--name", "limited", "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    result = live_server.cli(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["api_key"]


# Run inside the live server's environment (same data dir and database), in a subprocess
# so the test process's own database binding is left alone.
_PROGRAM_SCRIPT = r"""
import json, sys
from portal import create_app
from portal.domain import catalog
from portal.models import Application
app = create_app()
with app.app_context():
    partner = Application.get(Application.app_id == sys.argv[1]).partner
    card = catalog.create_card(partner, "SDK test card", "for the SDK journey")
    small = catalog.create_reward(card, "Espresso", 3)
    big = catalog.create_reward(card, "Cake", 8)
    catalog.update_program(partner, catalog.ProgramSettings(
        currency="EUR", referral_reward_kind="cashback", referral_amount=150,
        reward_referrer=True, reward_referee=False))
    print(json.dumps({"card_id": card.public_id, "small_reward": small.public_id, "big_reward": big.public_id}))
"""


@pytest.fixture(scope="session")
def program(live_server, demo) -> dict:
    """A stamp card with two rewards (3 and 8 stamps) and a 150-cent cashback referral rule
    (for the referrer) on the demo partner: card_id, small_reward, big_reward."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _PROGRAM_SCRIPT, demo["app_id"]], env=live_server.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
