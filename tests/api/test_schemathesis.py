"""Property-based tests from the OpenAPI document, against the real server on loopback.

Every request is signed with a valid all-scopes test key (SignedAuth adds the five
headers after schemathesis has built the request, so the body it signs is the body
sent). Checks: no 5xx, documented status codes, content types, headers and schemas,
and generated invalid input refused with a 4xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.api.helpers import SignedAuth


@pytest.fixture(scope="module")
def signed_auth(live_server):
    demo = live_server.demo()
    return SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])


@pytest.fixture(scope="module")
def api_schema(live_server):
    loaded = schemathesis.openapi.from_url(live_server.url + "/v1/openapi.json")
    # The signing headers are added by SignedAuth after generation; schemathesis must not
    # also generate (or strip, in negative cases) the Authorization header itself.
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi_document(case, live_server, signed_auth):
    case.call_and_validate(base_url=live_server.url, auth=signed_auth, checks=CHECKS, timeout=30)
