"""Every /v1 route is declared through @endpoint with its scope; nothing else is served."""

from __future__ import annotations

import pytest

from portal.api import REGISTRY
from portal.app import api_app_of
from portal.scopes import SCOPES

pytestmark = pytest.mark.sqlite_only  # the URL map, not the database


def test_every_v1_route_in_the_url_map_is_a_declared_endpoint(app):
    rules = list(api_app_of(app).url_map.iter_rules())
    undeclared = [
        f"{sorted(rule.methods - {'HEAD', 'OPTIONS'})} {rule.rule} ({rule.endpoint})"
        for rule in rules if rule.endpoint not in REGISTRY
    ]
    assert undeclared == [], "routes of the API app that bypass @endpoint (and so the gate's scope check)"
    assert {rule.endpoint for rule in rules} == set(REGISTRY), "every declared endpoint is routed"
    assert all(rule.rule.startswith("/v1/") for rule in rules)
    # The portal's own map has nothing under /v1: the front door never sends /v1 there.
    assert [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1")] == []


def test_every_declared_endpoint_names_a_known_scope_or_none(app):
    for ep in REGISTRY.values():
        assert ep.scope is None or ep.scope in SCOPES, ep.name
        if ep.scope is None:
            # /v1/keys/revoke-exposed: anyone may report a leaked key, unauthenticated (§13)
            assert ep.path in ("/v1/key", "/v1/openapi.json", "/v1/keys/revoke-exposed"), f"{ep.name} needs a scope"


def test_each_declared_route_answers_only_its_declared_method(app):
    rules = [rule for rule in api_app_of(app).url_map.iter_rules() if rule.endpoint in REGISTRY]
    assert len(rules) == len(REGISTRY)
    for rule in rules:
        assert rule.methods - {"HEAD", "OPTIONS"} == {REGISTRY[rule.endpoint].method}, rule.rule
        assert "OPTIONS" not in rule.methods, "OPTIONS would be answered outside the gate"


@pytest.mark.parametrize("where", ["portal", "api"])
def test_a_v1_route_added_without_endpoint_is_refused_at_run_time(app, client, where):
    target = app if where == "portal" else api_app_of(app)
    target.add_url_rule("/v1/rogue", "rogue", lambda: {"secret": "data"})
    response = client.get("/v1/rogue")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert b"secret" not in response.data
