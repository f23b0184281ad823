"""A hub's Flask app on an initialised data dir, and a browser-like test client for its console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hub import create_app
from hub.audit.events import Party
from hub.audit.message import AuditEvent
from hub.audit.record import record
from hub.console.accounts import add_user
from hub.db import Database
from hub.settings import Settings
from hub.setup import initialise

PASSWORD = "correct horse battery"
BASE = "https://localhost"
HUB = Party(user_id="https://localhost/xds/repository", address="localhost")
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def hidden(page: TestResponse, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page.get_data(as_text=True))
    assert found, f"no hidden field {name} on the page"
    return found.group(1)


class Browser:
    """The test client over https://localhost, keeping cookies as a browser does."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, base_url=BASE, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.post(path, base_url=BASE, **kwargs)

    def login(self, name: str = "alice", password: str = PASSWORD, next_path: str = "") -> TestResponse:
        form = self.get("/audit/login" + (f"?next={next_path}" if next_path else ""))
        return self.post("/audit/login", data={"name": name, "password": password, "next": hidden(form, "next"),
                                               "login_token": hidden(form, "login_token")})

    def csrf(self) -> str:
        return hidden(self.get("/audit"), "csrf_token")


@dataclass
class Console:
    app: Flask
    settings: Settings
    database: Database

    def browser(self) -> Browser:
        return Browser(self.app.test_client())

    def add_user(self, name: str = "alice", role: str = "compliance") -> None:
        with self.database.session() as session:
            add_user(session, name, role, PASSWORD)

    def record(self, *events: AuditEvent) -> None:
        with self.database.session() as session:
            for event in events:
                record(session, event, self.settings)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    settings = initialise(tmp_path / "var", console_lockout_attempts=3)
    database = Database(settings.database_url)
    app = create_app(settings, database)
    try:
        yield Console(app, settings, database)
    finally:
        database.dispose()
