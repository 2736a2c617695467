"""Schemathesis over the whole of GET /v1/openapi.json, against the real server in two
processes, on SQLite and on PostgreSQL (the suite's one schemathesis run):

- every operation, with schemathesis' three phases: the document's own examples, the
  coverage cases it derives from each schema (boundaries, missing and wrong-typed fields;
  input validation, so on SQLite only) and generated input, valid and invalid;
- then stateful runs that chain operations through the links schemathesis infers (a
  member created, then read, credited, redeemed, claimed for …).

Every request is signed with the demo's all-scopes test key (SignedAuth signs the exact
bytes schemathesis sends, after it has built the request). Checks: no 5xx, documented
status codes, content types, headers and schemas, and invalid input refused with a 4xx;
no traceback in the server's log. The figures (cases sent, 5xx seen) are printed per
engine.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.api.helpers import SignedAuth

EXAMPLES_PER_OPERATION = 30  # generated cases, on top of the examples and coverage cases
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 8

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# For a case generated to be invalid, the API must also refuse it (it applies to no other).
OPERATION_CHECKS = CHECKS + [checks.negative_data_rejection]
HYPOTHESIS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


class Tally:
    """Cases sent and 5xx answers, for the figures printed after each run."""

    def __init__(self):
        self.cases = 0
        self.server_errors = 0

    def count(self, response) -> None:
        self.cases += 1
        if response.status_code >= 500:
            self.server_errors += 1


@pytest.fixture
def api_schema(server, engine):
    """The document as the server serves it. SignedAuth adds the signing headers after
    generation, so schemathesis must not also generate (or, in invalid cases, strip) the
    Authorization header."""
    loaded = schemathesis.openapi.from_url(server.url + "/v1/openapi.json")
    loaded.config.generation.update(with_security_parameters=False)
    if engine == "postgres":
        # The coverage phase's cases are input validation (each schema's boundaries,
        # missing and wrong-typed fields), refused before any SQL: they run once, on SQLite.
        loaded.config.phases.update(phases=["examples", "fuzzing", "stateful"])
    return loaded


@pytest.fixture
def signed_auth(partner) -> SignedAuth:
    return SignedAuth(partner.app_id, partner.app_secret, partner.api_key)


@pytest.fixture
def tally(engine, server, request):
    """Counts the run's cases; prints the figures and checks the server log afterwards."""
    counted = Tally()
    log_before = len(server.log_text)
    yield counted
    print(f"\n[schemathesis {engine}] {request.node.originalname}: cases: {counted.cases}, "
          f"5xx: {counted.server_errors}")
    assert "Traceback" not in server.log_text[log_before:]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **HYPOTHESIS)
def test_every_operation_holds_to_the_document(case, server, signed_auth, tally):
    response = case.call(base_url=server.url, auth=signed_auth, timeout=30)
    tally.count(response)
    case.validate_response(response, checks=OPERATION_CHECKS)


def test_chained_operations_hold_to_the_document(api_schema, server, signed_auth, tally):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20, "the document lost operations"
    machine = api_schema.as_state_machine()
    assert api_schema.statistic.transitions.total > 0, "no links between operations: nothing stateful to run"
    call_kwargs = {"base_url": server.url, "auth": signed_auth, "timeout": 30}

    class SignedMachine(machine):
        def get_call_kwargs(self, case):
            return call_kwargs

        def after_call(self, response, case):
            tally.count(response)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    SignedMachine.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
                                        **HYPOTHESIS))
    assert tally.server_errors == 0
