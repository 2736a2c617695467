"""Schemathesis over the whole of GET /v1/openapi.json, against the real server in two
processes, on SQLite and on PostgreSQL: every operation with valid and with invalid
generated input, then stateful runs that chain operations through the links schemathesis
infers (a member created, then read, credited, redeemed, claimed for …).

Every request is signed with the demo's all-scopes test key (SignedAuth signs the exact
bytes schemathesis sends). Zero 5xx and zero schema violations; the figures (cases run,
5xx seen) are printed per engine. Bounded: about a minute per engine on a busy laptop.

(tests/api/test_schemathesis.py is the API's own per-operation run on SQLite; this one is
the whole-document, both-engines, stateful run of the reliability suite.)
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from tests.api.helpers import SignedAuth

EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 8

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
NEGATIVE_CHECKS = CHECKS + [checks.negative_data_rejection]
HYPOTHESIS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


class Tally:
    """Cases sent, 5xx answers, and the first failure of each operation."""

    def __init__(self):
        self.cases = 0
        self.server_errors = 0
        self.failures: dict[str, str] = {}

    def count(self, response) -> None:
        self.cases += 1
        if response.status_code >= 500:
            self.server_errors += 1


def test_the_whole_openapi_document_holds_under_fuzzing(server, engine):
    demo = server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    schema = schemathesis.openapi.from_url(server.url + "/v1/openapi.json")
    schema.config.generation.update(with_security_parameters=False)  # SignedAuth adds them
    call_kwargs = {"base_url": server.url, "auth": auth, "timeout": 30}
    tally = Tally()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the document lost operations"
    for operation in operations:
        for mode, examples in EXAMPLES_PER_OPERATION.items():
            _fuzz_operation(operation, mode, examples, call_kwargs, tally)

    stateless_cases = tally.cases
    _run_stateful(schema, call_kwargs, tally)

    print(f"\n[schemathesis {engine}] operations: {len(operations)}, cases: {tally.cases} "
          f"({stateless_cases} per operation, {tally.cases - stateless_cases} stateful), "
          f"5xx: {tally.server_errors}, failing operations: {len(tally.failures)}")
    assert tally.server_errors == 0
    assert not tally.failures, "\n\n".join(f"{name}: {text}" for name, text in tally.failures.items())
    assert "Traceback" not in server.log_text


def _fuzz_operation(operation, mode, examples, call_kwargs, tally: Tally) -> None:
    checks_for_mode = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, **HYPOTHESIS)
    def run(case):
        response = case.call(**call_kwargs)
        tally.count(response)
        case.validate_response(response, checks=checks_for_mode)

    try:
        run()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE  # an operation without inputs has nothing to break
    except Exception as exc:  # keep going: one report of every failing operation
        tally.failures[f"{operation.label} ({mode.value})"] = _short(exc)


def _run_stateful(schema, call_kwargs, tally: Tally) -> None:
    machine = schema.as_state_machine()
    assert schema.statistic.transitions.total > 0, "no links between operations: nothing stateful to run"

    class SignedMachine(machine):
        def get_call_kwargs(self, case):
            return call_kwargs

        def after_call(self, response, case):
            tally.count(response)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    try:
        SignedMachine.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
                                            **HYPOTHESIS))
    except Exception as exc:
        tally.failures["stateful"] = _short(exc)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 3000 else text[:3000] + " …"
