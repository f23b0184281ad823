"""Fixtures for the security tests: a hub PKI, registered organisations, and a
small Flask app with the OAuth endpoints and one protected route."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask, jsonify
from flask.testing import FlaskClient

from hub import db, problems
from hub.db import Database
from hub.organisations import NewOrganisation, add_organisation
from hub.security import oauth
from hub.security.pki import init_pki
from hub.security.tls import PEER_CERT_ENVIRON
from hub.settings import Settings


@dataclass
class Org:
    """A registered organisation as a test client."""

    new: NewOrganisation

    @property
    def der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.new.cert_pem).public_bytes(Encoding.DER)

    @property
    def environ(self) -> dict[str, bytes]:
        return {PEER_CERT_ENVIRON: self.der}

    @property
    def basic(self) -> dict[str, str]:
        raw = f"{self.new.client_id}:{self.new.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def pki_settings(settings: Settings) -> Settings:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_pki(settings)
    return settings


@pytest.fixture
def make_org(pki_settings: Settings, sqlite_database: Database) -> Callable[..., Org]:
    def make(name: str = "Org A", oid: str = "1.2.3.4.5", scopes: list[str] | str | None = None) -> Org:
        with sqlite_database.session() as session:
            return Org(add_organisation(session, pki_settings, name, oid, scopes))

    return make


@pytest.fixture
def security_app(pki_settings: Settings, sqlite_database: Database) -> Iterator[Flask]:
    """The OAuth blueprint and `/_protected/<scope>`, which answers the authenticated caller."""
    from hub.security.protect import authenticate

    app = Flask("security-test")
    app.config["XDSHUB_SETTINGS"] = pki_settings
    db.init_app(app, sqlite_database)
    problems.init_app(app)
    oauth.init_app(app)

    @app.get("/_protected/<scope>")
    def protected(scope: str):  # type: ignore[no-untyped-def]
        caller = authenticate(scope)
        return jsonify(organisation=caller.organisation_oid, client_id=caller.client_id,
                       scopes=sorted(caller.scopes), thumbprint=caller.thumbprint)

    yield app


@pytest.fixture
def client(security_app: Flask) -> FlaskClient:
    return security_app.test_client()


def get_token(client: FlaskClient, org: Org, scope: str | None = None,
              environ: dict[str, bytes] | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = client.post("/oauth/token", data=data, headers=org.basic,
                           environ_base=org.environ if environ is None else environ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.json["access_token"])  # type: ignore[index]
