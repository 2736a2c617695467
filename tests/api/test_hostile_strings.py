"""Hostile strings (issue #9): every string field of every operation (body, query, path)
sent text no database stores, a NUL byte and a lone surrogate, against the live server.

Explicit cases built with schemathesis from the served document, one per field and
value; schemathesis checks each answer against the document, and each must be 400
invalid_request naming the field. (The generated run over the whole document is
tests/reliability/test_fuzzing.py.) The API refuses these before any SQL, so one engine
is enough: the live server's SQLite file.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from schemathesis import checks

from tests.api.helpers import SignedAuth

HOSTILE_BODY_STRINGS = ("\ud800", "a\x00b")  # JSON carries both as \u escapes
HOSTILE_QUERY_STRINGS = ("a\x00b",)  # a lone surrogate has no UTF-8 to put in a URL
HOSTILE_CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                  checks.response_schema_conformance]


@pytest.fixture(scope="module")
def signed_auth(live_server):
    demo = live_server.demo()
    return SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])


@pytest.fixture(scope="module")
def api_schema(live_server):
    loaded = schemathesis.openapi.from_url(live_server.url + "/v1/openapi.json")
    # SignedAuth adds the signing headers; schemathesis must not add an Authorization header itself.
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


def _is_string(schema: dict) -> bool:
    kind = schema.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def test_every_string_field_refuses_text_no_database_stores(api_schema, live_server, signed_auth):
    document = requests.get(live_server.url + "/v1/openapi.json", timeout=10).json()
    tried = 0
    for path, item in document["paths"].items():
        for method, spec in item.items():
            operation = api_schema[path][method.upper()]
            params = {p["name"]: p for p in spec.get("parameters", [])}
            path_params = {name: "x" for name, p in params.items() if p["in"] == "path"}
            body_schema = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            attempts = [
                (operation.Case(path_parameters=path_params, body={name: value}, media_type="application/json"), name)
                for name, field in body_schema.get("properties", {}).items() if _is_string(field)
                for value in HOSTILE_BODY_STRINGS
            ] + [
                (operation.Case(path_parameters=path_params, query={name: value}), name)
                for name, p in params.items() if p["in"] == "query" and _is_string(p["schema"])
                for value in HOSTILE_QUERY_STRINGS
            ] + [
                (operation.Case(path_parameters={name: "a\x00b" for name in path_params}), "path")
                for _ in [0] if path_params
            ]
            for case, param in attempts:
                response = case.call_and_validate(base_url=live_server.url, auth=signed_auth, checks=HOSTILE_CHECKS,
                                                  timeout=30)
                error = response.json()["error"]
                assert (response.status_code, error["code"], error.get("param")) == (400, "invalid_request", param), (
                    f"{method.upper()} {path} {param}: {error}")
                tried += 1
    assert tried >= 40
