"""Health, readiness, metrics, request ids and error documents of the app."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from hub import create_app
from hub.db import Database
from hub.logs import JsonFormatter
from hub.settings import Settings


@pytest.fixture
def app(settings: Settings, sqlite_database: Database) -> Flask:
    return create_app(replace(settings, database_url=sqlite_database.url), sqlite_database)


def test_healthz_needs_no_authentication(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_checks_database_and_storage(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "storage": "ok"}


def test_readyz_reports_unwritable_storage(settings: Settings, sqlite_database: Database, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage folder should be")
    app = create_app(replace(settings, database_url=sqlite_database.url, storage_url=blocker.as_uri()),
                     sqlite_database)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["storage"].startswith("unavailable")


def test_readyz_reports_unreachable_database(settings: Settings, tmp_path: Path) -> None:
    broken = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'hub.db'}")
    app = create_app(replace(settings, database_url=broken.url), broken)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("unavailable")


def test_metrics_count_transactions_by_outcome(app: Flask) -> None:
    client = app.test_client()
    client.post("/xds/registry", data=b"<x/>", content_type="application/soap+xml")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'xdshub_transactions_total{outcome="fault",transaction="unknown"}' in text
    assert "xdshub_transaction_seconds_bucket" in text


def test_request_id_is_echoed_or_made(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"}).headers["X-Request-ID"]
    assert len(made) == 32 and " " not in made


def test_unknown_path_gets_a_problem_document(app: Flask) -> None:
    response = app.test_client().get("/no/such/path")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 404


def test_json_log_lines_carry_the_request_id(app: Flask) -> None:
    with app.test_request_context("/healthz"):
        from flask import g

        g.request_id = "req-42"
        record = logging.LogRecord("hub", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-42"
    assert line["path"] == "/healthz"
