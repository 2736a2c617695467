"""`GET /metrics`: Prometheus' text format, correct under several server processes
(DESIGN.md §14).

Series:

- `loyalty_api_requests_total{route, method, status, code}` — every /v1 request, by its
  route pattern (`/v1/members/<member_id>`, never the id itself; `unmatched` for a path
  with no route), HTTP status and error code (empty on success);
- `loyalty_api_request_duration_seconds{route, method}` — a latency histogram of the same;
- `loyalty_webhook_deliveries_total{outcome}` and `loyalty_webhook_deliveries_pending` —
  counted in the deliveries table when the scrape comes (so the delivery worker, a process
  of its own, is counted too, on every instance alike).

Several processes: `loyalty-portal serve` points PROMETHEUS_MULTIPROC_DIR at a private
folder of the data dir (emptied at each start) before anything imports prometheus_client;
each worker writes its counts to its own files there, a scrape adds them up
(prometheus_client's MultiProcessCollector) and gunicorn's `child_exit` hook marks a dead
worker's files. Without that variable (tests in one process, `flask run`) the counts live
in the process.

Access: with LOYALTY_METRICS_TOKEN set, only `Authorization: Bearer <token>` (compared in
constant time; anything else is 401 and counts nothing); without it, only callers on the
loopback address that did not come through a proxy.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import shutil
import threading
from pathlib import Path

from flask import Response, request

from portal.config import current_settings
from portal.logs import get_logger

log = get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_NAME = "metrics"  # inside the data dir
# Latency buckets in seconds: the gate is ~1 ms, a ledger write a few, a slow disk 100s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_lock = threading.Lock()
_series = None


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """For `serve`, before the app (and prometheus_client) is loaded: an empty folder of
    the data dir, readable by its owner only, named in PROMETHEUS_MULTIPROC_DIR for this
    process and the workers it forks. Counts from an earlier run are removed (a restart
    starts from zero, as Prometheus expects of a restarted target)."""
    path = Path(data_dir) / METRICS_DIR_NAME
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def multiprocess_dir() -> str | None:
    value = os.environ.get(MULTIPROC_ENV, "").strip()
    return value if value and os.path.isdir(value) else None


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges stop counting (its
    counters stay, as they must)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _Series:
    def __init__(self):
        from prometheus_client import Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # `_created` series mean nothing across restarting workers
        self.requests = Counter("loyalty_api_requests", "Requests to the /v1 API by route, method, status and "
                                "error code.", ("route", "method", "status", "code"))
        self.latency = Histogram("loyalty_api_request_duration_seconds", "Time to answer a /v1 request.",
                                 ("route", "method"), buckets=LATENCY_BUCKETS)


def _get_series() -> _Series:
    global _series
    if _series is None:
        with _lock:
            if _series is None:
                _series = _Series()
    return _series


_children: dict[tuple, tuple] = {}  # labels -> (counter child, histogram child): no lookup per request


def observe_api_request(route: str, method: str, status: int, code: str, seconds: float) -> None:
    """Count one /v1 request (called once per request by the API's after-request hook)."""
    key = (route, method, status, code)
    children = _children.get(key)
    if children is None:
        series = _get_series()
        children = _children[key] = (series.requests.labels(route, method, str(status), code),
                                     series.latency.labels(route, method))
    children[0].inc()
    children[1].observe(seconds)


# -- webhook deliveries, read at scrape time ----------------------------------------------


def webhook_delivery_figures() -> tuple[dict[str, int], int]:
    """Deliveries by outcome (succeeded, failed) and how many are pending, counted in the
    deliveries table (portal.models.webhooks), one grouped query per scrape."""
    import peewee

    from portal.models import WebhookDelivery

    rows = (WebhookDelivery.select(WebhookDelivery.status, peewee.fn.COUNT(WebhookDelivery.id))
            .group_by(WebhookDelivery.status).tuples())
    counts = {str(status): int(n) for status, n in rows}
    pending = counts.pop("pending", 0)
    return counts, pending


class _WebhookCollector:
    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from portal.db import UNAVAILABLE_ERRORS, release_connection

        try:
            outcomes, pending = webhook_delivery_figures()
        except UNAVAILABLE_ERRORS as exc:
            # The API's counters are worth having while the database is away: leave these out.
            log.warning("metrics: webhook figures left out, the database does not answer (%s)",
                        exc.__class__.__name__)
            release_connection()
            return
        done = CounterMetricFamily("loyalty_webhook_deliveries", "Webhook deliveries that ended, by outcome.",
                                   labels=("outcome",))
        for outcome in ("succeeded", "failed"):
            done.add_metric((outcome,), outcomes.get(outcome, 0))
        yield done
        gauge = GaugeMetricFamily("loyalty_webhook_deliveries_pending", "Webhook deliveries waiting to be sent.")
        gauge.add_metric((), pending)
        yield gauge


# -- the endpoint --------------------------------------------------------------------------


def _allowed() -> int | None:
    """None when this caller may scrape, else the status to refuse with."""
    token = current_settings().metrics_token
    if token:
        scheme, _, sent = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            return 401
        return None
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return 403  # came through a proxy: "loopback" is the proxy, not the caller
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    return None if loopback else 403


def metrics_response() -> Response:
    """The scrape: every process's counts added up, and the webhook figures."""
    refused = _allowed()
    if refused == 401:
        return Response("A valid metrics token is required: Authorization: Bearer <LOYALTY_METRICS_TOKEN>.\n",
                        401, {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"})
    if refused:
        return Response("Metrics are served to this machine only; set LOYALTY_METRICS_TOKEN to scrape from "
                        "elsewhere.\n", 403, {"Content-Type": "text/plain"})
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    _get_series()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessSeries())
    registry.register(_WebhookCollector())
    body = generate_latest(registry)
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


class _ProcessSeries:
    """In one process: our series from the default registry, without the library's own."""

    def collect(self):
        from prometheus_client import REGISTRY

        for family in REGISTRY.collect():
            if family.name.startswith("loyalty_"):
                yield family


def init_app(app) -> None:
    """Mount `GET /metrics`."""

    @app.get("/metrics")
    def metrics():
        """Prometheus' text format (token or loopback only)."""
        return metrics_response()
