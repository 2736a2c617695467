"""Every /v1 route is declared through @endpoint with its scope; nothing else is served."""

from __future__ import annotations

import pytest

from portal.api import REGISTRY
from portal.scopes import SCOPES

pytestmark = pytest.mark.sqlite_only  # the URL map, not the database


def test_every_v1_route_in_the_url_map_is_a_declared_endpoint(app):
    undeclared = [
        f"{sorted(rule.methods - {'HEAD', 'OPTIONS'})} {rule.rule} ({rule.endpoint})"
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1") and rule.endpoint not in REGISTRY
    ]
    assert undeclared == [], "routes under /v1 that bypass @endpoint (and so the gate's scope check)"


def test_every_declared_endpoint_names_a_known_scope_or_none(app):
    for ep in REGISTRY.values():
        assert ep.scope is None or ep.scope in SCOPES, ep.name
        if ep.scope is None:
            # /v1/keys/revoke-exposed: anyone may report a leaked key, unauthenticated (§13)
            assert ep.path in ("/v1/key", "/v1/openapi.json", "/v1/keys/revoke-exposed"), f"{ep.name} needs a scope"


def test_each_declared_route_answers_only_its_declared_method(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in REGISTRY:
            assert rule.methods - {"HEAD", "OPTIONS"} == {REGISTRY[rule.endpoint].method}, rule.rule
            assert "OPTIONS" not in rule.methods, "OPTIONS would be answered outside the gate"


def test_a_v1_route_added_without_endpoint_is_refused_at_run_time(app, client):
    app.add_url_rule("/v1/rogue", "rogue", lambda: {"secret": "data"})
    response = client.get("/v1/rogue")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert b"secret" not in response.data
