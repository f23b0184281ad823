"""A running DIMSE listener on loopback (real pynetdicom, its own threads) and a pynetdicom SCU to call it.

`hub` gives the listener's settings (with the hub PKI), its database and blob
store, an organisation "Org A" and the calling AE title "MODALITY1"
registered to it. `scu` opens associations as a modality would.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.db import Database
from hub.security.pki import init_pki
from hub.settings import Settings
from hub.tables import Organisation
from repository.blobstore import FileBlobStore
from repository.dimse.entities import add_entity
from repository.dimse.scp import Listener, start

ORG_OID = "1.2.3.4.5"
CALLING_AE = "MODALITY1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hub:
    settings: Settings
    database: Database
    store: FileBlobStore
    listener: Listener | None = None

    @property
    def port(self) -> int:
        return self.settings.dimse_port

    def audit(self, event_id: str) -> list[AuditRecord]:
        with self.database.session() as session:
            return list(session.scalars(select(AuditRecord).where(AuditRecord.event_id == event_id)
                                        .order_by(AuditRecord.seq)))

    def wait_for_audit(self, event_id: str, count: int = 1, seconds: float = 10) -> list[AuditRecord]:
        """The records of `event_id` once there are `count` (the listener writes them as associations close)."""
        deadline = time.monotonic() + seconds
        while True:
            records = self.audit(event_id)
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.05)


def register_ae(database: Database, ae_title: str = CALLING_AE, host: str | None = None) -> None:
    with database.session() as session:
        add_entity(session, ae_title, ORG_OID, host)


@pytest.fixture
def hub_settings(settings: Settings) -> Settings:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_pki(settings)
    return replace(settings, host="127.0.0.1", dimse_port=free_port())


@pytest.fixture
def make_hub(hub_settings: Settings, database: Database, tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    """make_hub(**settings overrides) -> a Hub whose listener runs until the test ends."""
    with database.session() as session:
        session.add(Organisation(name="Org A", oid=ORG_OID, created_at=datetime.now(UTC)))
    register_ae(database)
    started: list[Listener] = []

    def make(**overrides: Any) -> Hub:
        settings = replace(hub_settings, **overrides)
        hub = Hub(settings, database, FileBlobStore(tmp_path / "blobs"))
        hub.listener = start(settings, database, hub.store)
        started.append(hub.listener)
        return hub

    yield make
    for listener in started:
        listener.stop()


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub()


def scu(ae_title: str = CALLING_AE) -> AE:
    """A modality's AE proposing Verification and the storage SOP classes in the native syntaxes."""
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    for context in StoragePresentationContexts[:100]:
        ae.add_requested_context(context.abstract_syntax, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def associate(hub: Hub, ae_title: str = CALLING_AE, called: str = "XDSHUB",
              tls: ssl.SSLContext | None = None) -> Association:
    tls_args = (tls, "localhost") if tls is not None else None
    assoc = scu(ae_title).associate("127.0.0.1", hub.port, ae_title=called, tls_args=tls_args)
    if not assoc.is_established:
        # pynetdicom leaves the requestor's socket open when the TLS handshake or the connection fails
        sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
        if sock is not None:
            sock.close()
    return assoc


def send(hub: Hub, *datasets: Dataset, ae_title: str = CALLING_AE) -> list[int]:
    """Each dataset by C-STORE in one association: the statuses answered."""
    assoc = associate(hub, ae_title)
    assert assoc.is_established
    try:
        statuses = []
        for ds in datasets:
            answer = assoc.send_c_store(ds)
            statuses.append(int(answer.Status))
        return statuses
    finally:
        assoc.release()
