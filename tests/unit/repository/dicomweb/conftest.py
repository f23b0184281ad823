"""The DICOMweb service through the whole app (security, audit, database, blob store) with Flask's test client.

The verified client certificate is placed in the WSGI environ where the TLS
server puts it; tokens come from the hub's own token endpoint. Runs on SQLite
and PostgreSQL (`database_url`) and on a local folder and S3 (`store`).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import Dataset

from hub import create_app
from hub.db import Base, Database
from hub.organisations import add_organisation
from hub.setup import initialise
from hub.soap.mtom import iter_parts, parse_content_type
from repository.blobstore import BlobStore
from repository.ingest import Sender, ingest
from repository.views import STORE_KEY
from tests.factories.dicom import instance_bytes
from tests.functional.soap_support import Party

SCOPES = "dicomweb:read dicomweb:write"


@dataclass
class Web:
    app: Flask
    database: Database
    store: BlobStore
    a: Party
    b: Party
    reader: Party          # granted xds scopes only

    def call(self, party: Party | None, method: str, path: str, *, scope: str = SCOPES,
             headers: dict[str, str] | None = None, data: bytes | None = None) -> Any:
        sent = dict(headers or {})
        environ = {}
        if party is not None:
            sent["Authorization"] = f"Bearer {party.token(self.app, scope)}"
            environ = party.environ()
        return self.app.test_client().open(path, method=method, environ_base=environ, headers=sent, data=data)

    def ingest(self, party: Party, datasets: Sequence[Dataset]) -> None:
        with self.database.session() as session:
            for dataset in datasets:
                ingest(session, self.store, io.BytesIO(instance_bytes(dataset)),
                       Sender(party.organisation_id, party.oid))


@pytest.fixture
def web(tmp_path: Path, database_url: str, store: BlobStore) -> Iterator[Web]:
    settings = replace(initialise(tmp_path / "hub", database_url=database_url), database_url=database_url)
    database = Database(database_url)
    database.upgrade()
    parties = []
    with database.session() as session:
        for name, oid, scopes in (("Org A", "1.3.6.1.4.1.21367.2026.201", SCOPES),
                                  ("Org B", "1.3.6.1.4.1.21367.2026.202", SCOPES),
                                  ("Org C", "1.3.6.1.4.1.21367.2026.203", "xds:query")):
            new = add_organisation(session, settings, name, oid, scopes)
            parties.append(Party.from_pem(name, oid, new.organisation_id, new.client_id, new.client_secret,
                                          new.cert_pem))
    app = create_app(settings, database)
    app.extensions[STORE_KEY] = store
    try:
        yield Web(app, database, store, *parties)
    finally:
        with database.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        database.dispose()


def multipart(parts: Sequence[tuple[str, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/related body of (content type, bytes) parts and its Content-Type."""
    boundary = boundary or f"b-{uuid.uuid4().hex}"
    body = b"".join(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
                    for ctype, data in parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def parts_of(response: Any) -> list[tuple[str, bytes]]:
    """The (content type, bytes) parts of a multipart/related answer."""
    ctype = parse_content_type(response.headers["Content-Type"])
    found = []
    for part in iter_parts(io.BytesIO(response.get_data()), ctype.params["boundary"], max_bytes=1 << 30):
        found.append((part.content_type, part.open().read()))
    return found
