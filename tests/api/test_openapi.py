"""GET /v1/openapi.json: a valid OpenAPI 3.1 document that matches the registry and DESIGN §6."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from portal.api import REGISTRY
from portal.api.openapi import openapi_path

pytestmark = pytest.mark.sqlite_only  # the document does not depend on the engine

# DESIGN.md §6: every endpoint with its scope (None: any valid key).
SECTION_6 = {
    ("GET", "/v1/key"): None,
    ("POST", "/v1/members"): "member_write",
    ("GET", "/v1/members"): "member_read",
    ("GET", "/v1/members/{member_id}"): "member_read",
    ("PATCH", "/v1/members/{member_id}"): "member_write",
    ("GET", "/v1/members/validate"): "member_read",
    ("POST", "/v1/members/{member_id}/otp"): "member_write",
    ("POST", "/v1/members/{member_id}/otp/verify"): "member_write",
    ("GET", "/v1/cards"): "card_read",
    ("GET", "/v1/cards/{card_id}"): "card_read",
    ("GET", "/v1/members/{member_id}/stamps"): "stamps_read",
    ("GET", "/v1/members/{member_id}/stamps/history"): "stamps_read",
    ("POST", "/v1/members/{member_id}/stamps"): "stamps_write",
    ("POST", "/v1/members/{member_id}/stamps/redeem"): "stamps_write",
    ("GET", "/v1/members/{member_id}/cashback"): "cashback_read",
    ("GET", "/v1/members/{member_id}/cashback/history"): "cashback_read",
    ("POST", "/v1/members/{member_id}/cashback/credit"): "cashback_write",
    ("POST", "/v1/members/{member_id}/cashback/redeem"): "cashback_write",
    ("POST", "/v1/claims"): "claim_write",
    ("GET", "/v1/claims"): "claim_write",
    ("GET", "/v1/claims/{claim_id}"): "claim_write",
    ("POST", "/v1/claims/{claim_id}/approve"): "claim_write",
    ("POST", "/v1/claims/{claim_id}/reject"): "claim_write",
    ("GET", "/v1/members/{member_id}/referrals"): "referral_read",
    ("GET", "/v1/referrals/validate"): "referral_read",
    ("POST", "/v1/referrals/apply"): "referral_write",
}


@pytest.fixture
def document(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"].startswith("req_")
    return response.get_json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_document_needs_no_key(client):
    assert client.get("/v1/openapi.json").status_code == 200


def test_every_endpoint_of_the_design_is_documented_with_its_scope(document):
    documented = {(m, p): op["x-required-scope"] for m, p, op in operations(document)}
    missing = sorted(set(SECTION_6) - set(documented))
    assert missing == []
    wrong = {k: (documented[k], v) for k, v in SECTION_6.items() if documented[k] != v}
    assert wrong == {}


def test_document_and_registry_list_the_same_operations(document):
    documented = {(m, p) for m, p, _ in operations(document)}
    registered = {(ep.method, openapi_path(ep.path)) for ep in REGISTRY.values()}
    assert documented == registered


def test_every_signed_operation_documents_the_gate_errors_and_request_id(document):
    for method, path, operation in operations(document):
        responses = operation["responses"]
        for response in responses.values():
            assert "X-Request-Id" in response.get("headers", {}), f"{method} {path}"
        if operation.get("security") == []:
            continue
        for status in ("400", "401", "403"):
            assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        if method == "POST":
            assert "409" in responses
            assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])


def test_security_scheme_describes_the_signing(document):
    (scheme,) = document["components"]["securitySchemes"].values()
    for text in ("X-Loyalty-Signature", "X-Loyalty-Nonce", "canonical string", "LOYALTY-HMAC-SHA256-V1",
                 "insufficient_scope"):
        assert text in scheme["description"]


def test_request_schemas_refuse_unknown_fields(document):
    for method, path, operation in operations(document):
        body = operation.get("requestBody")
        if body:
            assert body["content"]["application/json"]["schema"]["additionalProperties"] is False, f"{method} {path}"
