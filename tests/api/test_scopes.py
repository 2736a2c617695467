"""For every operation of the OpenAPI document: a key lacking its scope gets 403
insufficient_scope naming it, and a key holding only that scope gets past the gate."""

from __future__ import annotations

import re

import pytest

from tests.api.helpers import ALL_SCOPES, SignedClient, add_key, error_of

pytestmark = pytest.mark.sqlite_only  # what each operation declares; the gate's scope lookup is in test_gate

METHODS = ("get", "post", "patch", "put", "delete")


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def concrete(path: str) -> str:
    """Fill path parameters with ids that exist nowhere (the scope check comes first)."""
    return re.sub(r"\{[^}]+\}", "id_that_does_not_exist", path)


def test_every_operation_declares_x_required_scope(client):
    document = client.get("/v1/openapi.json").get_json()
    for method, path, operation in operations(document):
        assert "x-required-scope" in operation, f"{method} {path}"
        scope = operation["x-required-scope"]
        assert scope is None or scope in ALL_SCOPES, f"{method} {path}: {scope}"


def test_key_lacking_the_scope_gets_insufficient_scope_on_every_operation(app, client, creds):
    document = client.get("/v1/openapi.json").get_json()
    checked = 0
    keys = {}
    for method, path, operation in operations(document):
        scope = operation["x-required-scope"]
        if scope is None:
            continue
        if scope not in keys:
            keys[scope] = SignedClient(client, add_key(app, creds, scopes=[s for s in ALL_SCOPES if s != scope]))
        response = keys[scope].request(method, concrete(path), json={} if method != "GET" else None)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.get_data(as_text=True)}"
        error = error_of(response)
        assert (error["code"], error["required_scope"]) == ("insufficient_scope", scope), f"{method} {path}"
        checked += 1
    assert checked >= 8  # the members endpoints alone declare 8 scoped operations


def test_key_with_only_the_scope_gets_past_the_gate_on_every_operation(app, client, creds):
    document = client.get("/v1/openapi.json").get_json()
    for method, path, operation in operations(document):
        scope = operation["x-required-scope"]
        if scope is None:
            continue
        only = SignedClient(client, add_key(app, creds, scopes=[scope]))
        response = only.request(method, concrete(path), json={} if method != "GET" else None)
        assert response.status_code not in (401, 403), f"{method} {path}: {response.get_data(as_text=True)}"
