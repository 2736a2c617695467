"""Every typed object declares exactly the fields of its response schema in the server's
OpenAPI document (`components.schemas` of `GET /v1/openapi.json`), nests the right objects,
and every SDK method returns the object of the schema its endpoint answers with. A field
the server adds, renames or drops, or a new response schema, fails here first."""

from __future__ import annotations

import inspect
import re

import loyalty_sdk
import pytest
import requests
from loyalty_sdk import (
    ENDPOINTS,
    AppliedReferral,
    Card,
    CashbackBalance,
    Claim,
    KeyInfo,
    LedgerEntry,
    LoyaltyClient,
    LoyaltyObject,
    Member,
    MemberValidation,
    OtpRequest,
    OtpVerification,
    Redemption,
    Referral,
    ReferralStats,
    ReferralValidation,
    Reward,
    StampBalance,
    StampBalances,
)

# SDK class -> the component it reads. A (component, property) pair names the inline
# schema of that array property's items.
COMPONENT_OF: dict[type[LoyaltyObject], str | tuple[str, str]] = {
    KeyInfo: "KeyInfo",
    Member: "Member",
    MemberValidation: "MemberValidation",
    OtpRequest: "OtpSent",
    OtpVerification: "OtpVerification",
    Reward: "Reward",
    Card: "Card",
    StampBalances: "StampBalances",
    StampBalance: ("StampBalances", "data"),
    LedgerEntry: "LedgerEntry",
    Redemption: "Redemption",
    CashbackBalance: "CashbackBalance",
    Claim: "Claim",
    Referral: "Referral",
    AppliedReferral: "AppliedReferral",
    ReferralStats: "ReferralStats",
    ReferralValidation: "ReferralValidation",
}
# Error answers become exceptions (loyalty_sdk.errors), not objects; revoke-exposed's
# {"received": n} is read by `loyalty_sdk.scan.report_exposed`, which returns the count.
NOT_AN_OBJECT = {"Error", "ExposedKeysReceived"}
REF = re.compile(r"^#/components/schemas/(\w+)$")


@pytest.fixture(scope="module")
def openapi(live_server) -> dict:
    return requests.get(live_server.url + "/v1/openapi.json", timeout=10).json()


def schema_of(document: dict, component: str | tuple[str, str]) -> dict:
    schemas = document["components"]["schemas"]
    if isinstance(component, tuple):
        name, prop = component
        return schemas[name]["properties"][prop]["items"]
    return schemas[component]


def referenced(schema: dict) -> str | tuple[str, str] | None:
    """The component a property holds (one object or an array of them), if it holds one."""
    target = schema.get("items", schema)
    match = REF.match(target.get("$ref", ""))
    return match.group(1) if match else None


def test_every_object_class_and_every_response_schema_is_in_the_mapping(openapi):
    exported = {obj for name in loyalty_sdk.__all__
                if inspect.isclass(obj := getattr(loyalty_sdk, name))
                and issubclass(obj, LoyaltyObject) and obj is not LoyaltyObject}
    assert exported == set(COMPONENT_OF), "an object class without its component, or the reverse"
    named = {c for c in COMPONENT_OF.values() if isinstance(c, str)}
    assert set(openapi["components"]["schemas"]) - NOT_AN_OBJECT == named, "a response schema without an SDK object"


@pytest.mark.parametrize("cls", list(COMPONENT_OF), ids=lambda cls: cls.__name__)
def test_an_object_declares_exactly_the_properties_of_its_schema(openapi, cls):
    properties = schema_of(openapi, COMPONENT_OF[cls])["properties"]
    assert cls._fields() == set(properties), (
        f"{cls.__name__} lacks {sorted(set(properties) - cls._fields())}, "
        f"declares unknown {sorted(cls._fields() - set(properties))}")


@pytest.mark.parametrize("cls", list(COMPONENT_OF), ids=lambda cls: cls.__name__)
def test_nested_objects_are_the_classes_of_the_referenced_schemas(openapi, cls):
    component = COMPONENT_OF[cls]
    class_of = {c: k for k, c in COMPONENT_OF.items()}
    expected = {}
    for name, prop in schema_of(openapi, component)["properties"].items():
        target = referenced(prop)
        if target is None and prop.get("type") == "array" and prop["items"].get("type") == "object":
            target = (component, name)  # inline items, e.g. StampBalances.data
        if target is not None:
            expected[name] = class_of[target]
    assert cls._nested == expected


def test_every_method_returns_the_object_of_its_endpoints_response(openapi):
    client = LoyaltyClient(app_id="app_k3j9x0q2m5n8p1r4", app_secret="secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae",
                           api_key="test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2", base_url="http://127.0.0.1:9")
    class_of = {c: k.__name__ for k, c in COMPONENT_OF.items()}
    for operation, endpoint in ENDPOINTS.items():
        path = endpoint.path.replace("/v1", "", 1)
        responses = openapi["paths"]["/v1" + path][endpoint.method.lower()]["responses"]
        schema = next(r for code, r in responses.items() if code.startswith("2"))["content"]["application/json"]["schema"]
        if operation == "key_info":
            method = client.key_info
        else:
            resource, name = operation.split(".")
            method = getattr(getattr(client, resource), name)
        returned = str(inspect.signature(method).return_annotation).strip("'\"")
        if "$ref" in schema:
            assert returned == class_of[referenced(schema)], operation
        else:  # a list: {object: "list", data: [...], has_more}
            assert returned == f"ListIterator[{class_of[referenced(schema['properties']['data'])]}]", operation
