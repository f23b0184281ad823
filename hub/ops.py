"""Operations endpoints: liveness, readiness and Prometheus metrics.

- GET /healthz: the process answers (no authentication: for load balancers).
- GET /readyz: the database answers and the storage location is writable.
- GET /metrics: requests, errors and latency per transaction, in the
  Prometheus text format; with several worker processes the values of all of
  them are merged (prometheus_client multiprocess mode, enabled by
  `xdshub serve` through PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from hub.db import get_database

blueprint = Blueprint("ops", __name__)

TRANSACTIONS = Counter(
    "xdshub_transactions_total", "IHE transactions handled, by transaction and outcome",
    ["transaction", "outcome"],
)
TRANSACTION_SECONDS = Histogram(
    "xdshub_transaction_seconds", "Time to answer an IHE transaction", ["transaction"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_REQUESTS = Counter(
    "xdshub_http_requests_total", "HTTP requests by endpoint and status class", ["endpoint", "status"],
)
HTTP_ERRORS = Counter("xdshub_http_errors_total", "HTTP answers with status >= 500", ["endpoint"])


def observe_transaction(transaction: str, outcome: str, seconds: float) -> None:
    TRANSACTIONS.labels(transaction, outcome).inc()
    TRANSACTION_SECONDS.labels(transaction).observe(seconds)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def storage_writable(storage_url: str) -> None:
    """Raise (OSError, or ValueError for a bad URL) unless the blob store can take a write."""
    from repository.blobstore import open_blob_store

    open_blob_store(storage_url).check()


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    from hub import get_settings

    checks: dict[str, str] = {}
    try:
        get_database().ping()
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        storage_writable(get_settings().storage_url)
        checks["storage"] = "ok"
    except (OSError, ValueError) as exc:
        checks["storage"] = f"unavailable: {getattr(exc, 'strerror', None) or type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blueprint.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(endpoint, f"{response.status_code // 100}xx").inc()
        if response.status_code >= 500:
            HTTP_ERRORS.labels(endpoint).inc()
        return response
