"""`GET /metrics` (DESIGN.md §14): Prometheus' text format that prometheus_client's own
parser reads, counts that add up across two server processes, and access by token or
from loopback only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import SignedAuth
from tests.conftest import LiveServer

TOKEN = "metrics-token-for-tests-0123456789"


def samples(text: str, name: str) -> list:
    """Every sample called `name` in a scrape, parsed by prometheus_client."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def total(text: str, name: str, **labels) -> float:
    return sum(s.value for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("metrics"), workers=2,
                        env={"LOYALTY_METRICS_TOKEN": TOKEN}).start()
    yield server
    server.stop()


def scrape(server, token=TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(server.url + "/metrics", headers=headers, timeout=10)


def test_counters_add_up_across_two_workers(two_workers):
    server = two_workers
    demo = server.demo()
    auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
    before = scrape(server).text
    ok, unsigned, missing = 60, 30, 10

    def signed(_):
        return requests.get(server.url + "/v1/key", auth=auth, timeout=10).status_code

    def bare(_):
        return requests.get(server.url + "/v1/key", timeout=10).status_code

    def unknown(_):
        return requests.get(server.url + "/v1/members/mem_nothing", auth=auth, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(signed, range(ok))) + list(pool.map(bare, range(unsigned))) \
            + list(pool.map(unknown, range(missing)))
    assert statuses.count(200) == ok and statuses.count(401) == unsigned and statuses.count(404) == missing

    response = scrape(server)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    after = response.text
    name = "loyalty_api_requests_total"
    n = ok + unsigned + missing
    assert total(after, name) - total(before, name) == n
    assert total(after, name, route="/v1/key", status="200", code="") - \
        total(before, name, route="/v1/key", status="200", code="") == ok
    assert total(after, name, route="/v1/key", status="401", code="missing_api_key") - \
        total(before, name, route="/v1/key", status="401", code="missing_api_key") == unsigned
    assert total(after, name, route="/v1/members/<member_id>", status="404") - \
        total(before, name, route="/v1/members/<member_id>", status="404") == missing
    count = "loyalty_api_request_duration_seconds_count"
    assert total(after, count) - total(before, count) == n
    assert total(after, "loyalty_api_request_duration_seconds_bucket", le="+Inf") == total(after, count)
    # both processes wrote counts of their own, and the scrape added them up
    files = list((server.data_dir / "metrics").glob("counter_*.db"))
    assert len(files) == 2, files
    # webhook figures are present (0 until deliveries exist)
    assert samples(after, "loyalty_webhook_deliveries_pending")
    assert {s.labels["outcome"] for s in samples(after, "loyalty_webhook_deliveries_total")} == {"succeeded", "failed"}


def test_a_wrong_or_missing_token_is_401_and_counts_nothing(two_workers):
    server = two_workers
    before = scrape(server).text
    for token in ("wrong", "", None, TOKEN + "x"):
        refused = scrape(server, token)
        assert refused.status_code == 401 and "loyalty_api" not in refused.text
    assert requests.get(server.url + "/metrics", headers={"Authorization": f"Basic {TOKEN}"},
                        timeout=10).status_code == 401
    after = scrape(server).text
    assert total(after, "loyalty_api_requests_total") == total(before, "loyalty_api_requests_total")


def test_a_restart_starts_the_counts_afresh(tmp_path):
    server = LiveServer(tmp_path, env={"LOYALTY_METRICS_TOKEN": TOKEN}).start()
    try:
        requests.get(server.url + "/v1/key", timeout=10)
        assert total(scrape(server).text, "loyalty_api_requests_total") == 1
        server.kill()
        server.start()
        assert total(scrape(server).text, "loyalty_api_requests_total") == 0
        assert oct((tmp_path / "metrics").stat().st_mode & 0o777) == "0o700"
    finally:
        server.stop()


def test_without_a_token_only_loopback_callers_get_metrics(app):
    client = app.test_client()
    client.get("/v1/key")
    here = client.get("/metrics")
    assert here.status_code == 200
    assert total(here.get_data(as_text=True), "loyalty_api_requests_total", route="/v1/key") >= 1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403


def test_webhook_deliveries_are_counted_by_outcome_and_pending(app):
    from portal.domain.applications import create_application
    from portal.models import Partner, WebhookDelivery, WebhookEndpoint, WebhookEvent

    with app.app_context():
        partner = Partner.create(name="Shop")
        application, _ = create_application(partner, "Till")
        endpoint = WebhookEndpoint.create(public_id="we_1", application=application, mode="test",
                                          url="https://example.com/hook", secret_ciphertext="x")
        event = WebhookEvent.create(public_id="evt_1", application=application, mode="test", type="member.created",
                                    body="{}")
        for status, n in (("pending", 3), ("succeeded", 2), ("failed", 1)):
            for _ in range(n):
                WebhookDelivery.create(event=event, endpoint=endpoint, status=status)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert total(text, "loyalty_webhook_deliveries_pending") == 3
    assert total(text, "loyalty_webhook_deliveries_total", outcome="succeeded") == 2
    assert total(text, "loyalty_webhook_deliveries_total", outcome="failed") == 1
