"""Helpers to speak SOAP to the registry the way a consumer would (Flask test client or HubClient)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from lxml import etree

from hub import create_app
from hub.db import Base, Database
from hub.organisations import add_organisation
from hub.setup import initialise
from hub.soap.envelope import NS_SOAP12, parse_xml, render_envelope, serialize

ORGANISATIONS = (("Org A", "1.3.6.1.4.1.21367.2026.101"), ("Org B", "1.3.6.1.4.1.21367.2026.102"))


def envelope_bytes(action: str, body: etree._Element | bytes) -> bytes:
    return serialize(render_envelope(action, parse_xml(body) if isinstance(body, bytes) else body))


@dataclass
class Party:
    """An organisation as a test client: its certificate (DER), credentials and granted scopes."""

    name: str
    oid: str
    organisation_id: int
    client_id: str
    client_secret: str
    cert_der: bytes

    @classmethod
    def from_pem(cls, name: str, oid: str, organisation_id: int, client_id: str, client_secret: str,
                 cert_pem: bytes) -> Party:
        der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
        return cls(name, oid, organisation_id, client_id, client_secret, der)

    def environ(self) -> dict[str, bytes]:
        return {"xdshub.peer_cert_der": self.cert_der}

    def token(self, app: Flask, scope: str | None = None) -> str:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        response = app.test_client().post("/oauth/token", data=data, environ_base=self.environ(),
                                          headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.json["access_token"])


def post_soap(app: Flask, action: str, body: etree._Element | bytes | None = None, *, party: Party | None,
              token: str | None, raw: bytes | None = None,
              content_type: str | None = None) -> tuple[int, etree._Element, dict[str, str]]:
    data = raw if raw is not None else envelope_bytes(action, body)  # type: ignore[arg-type]
    headers = {"Content-Type": content_type or f'application/soap+xml; charset=UTF-8; action="{action}"'}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = app.test_client().post("/xds/registry", data=data, headers=headers,
                                      environ_base=party.environ() if party else {})
    return response.status_code, parse_xml(response.get_data()), dict(response.headers)


def body_of(envelope: etree._Element) -> etree._Element:
    body = envelope.find(f"{{{NS_SOAP12}}}Body")
    assert body is not None
    return next(c for c in body if isinstance(c.tag, str))


def error_codes(envelope: etree._Element) -> list[str]:
    return [e.get("errorCode", "") for e in envelope.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryError")]


def fault_reason(envelope: etree._Element) -> str:
    return envelope.findtext(f".//{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or ""


@contextmanager
def app_with_two_parties(folder: Path, database_url: str, scopes: str,
                         **overrides: object) -> Iterator[tuple[Flask, Database, Party, Party]]:
    """The hub's app on `database_url` with "Org A" and "Org B" granted `scopes`; every table dropped after."""
    settings = replace(initialise(folder, database_url=database_url), database_url=database_url, **overrides)
    database = Database(database_url)
    database.upgrade()
    parties = []
    with database.session() as session:
        for name, oid in ORGANISATIONS:
            new = add_organisation(session, settings, name, oid, scopes)
            parties.append(Party.from_pem(name, oid, new.organisation_id, new.client_id, new.client_secret,
                                          new.cert_pem))
    try:
        yield create_app(settings, database), database, parties[0], parties[1]
    finally:
        with database.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        database.dispose()
