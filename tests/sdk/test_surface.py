"""The SDK's surface: the method→scope table agrees with the server's OpenAPI document, and
every operation has a documented method."""

from __future__ import annotations

import inspect

import loyalty_sdk
import requests
from loyalty_sdk import ENDPOINTS, SCOPES, LoyaltyClient

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
# The endpoints that need no key: the document, and the exposed-key report (which the SDK
# reaches through `loyalty_sdk.scan.report_exposed`, `loyalty-sdk scan --report`).
UNSIGNED = {("GET", "/v1/openapi.json"), ("POST", "/v1/keys/revoke-exposed")}


def _server_operations(live_server) -> dict[tuple[str, str], str | None]:
    document = requests.get(live_server.url + "/v1/openapi.json", timeout=10).json()
    return {
        (method.upper(), path): operation.get("x-required-scope")
        for path, operations in document["paths"].items()
        for method, operation in operations.items() if method in HTTP_METHODS
    }


def test_the_sdk_method_scope_table_matches_the_servers_openapi_document(live_server):
    server = _server_operations(live_server)
    sdk = {(endpoint.method, endpoint.path): endpoint.scope for endpoint in ENDPOINTS.values()}
    assert set(server) - UNSIGNED == set(sdk), "an operation is missing on one side"
    assert {op: server[op] for op in sdk} == sdk, "a scope differs"


def test_the_sdk_knows_the_same_scopes_as_the_server():
    from portal.scopes import SCOPE_NAMES

    assert SCOPES == SCOPE_NAMES


def test_every_operation_has_a_documented_method_on_the_client():
    client = LoyaltyClient(app_id="app_k3j9x0q2m5n8p1r4", app_secret="secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae",
                           api_key="test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2",
                           base_url="http://127.0.0.1:9")
    for operation in ENDPOINTS:
        target = client
        for part in operation.split("."):
            target = getattr(target, part)
        assert callable(target), operation
        assert inspect.getdoc(target), f"{operation} has no docstring"


def test_every_public_name_and_method_is_documented():
    for name in loyalty_sdk.__all__:
        obj = getattr(loyalty_sdk, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                    assert inspect.getdoc(member), f"{name}.{attr}"
