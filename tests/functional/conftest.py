"""A real hub on loopback: `xdshub serve` in a subprocess, real TLS, two organisations.

`running_hub` (session scope) initialises a data dir with the project's own
PKI, registers "Org A" and "Org B" with their client bundles, starts the
console script on an ephemeral port and waits until /healthz answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.client import wait_until_healthy
from hub.db import Database
from hub.organisations import add_organisation, write_bundle
from hub.settings import Settings
from hub.setup import initialise

ORGANISATIONS = {"Org A": "1.3.6.1.4.1.21367.2026.901", "Org B": "1.3.6.1.4.1.21367.2026.902"}
STARTUP_SECONDS = 60


@dataclass
class RunningHub:
    data_dir: Path
    url: str
    settings: Settings
    bundles: dict[str, Path] = field(default_factory=dict)     # "Org A" -> folder with client.crt, ...
    oids: dict[str, str] = field(default_factory=dict)         # "Org A" -> its OID
    log: Path | None = None

    @property
    def ca(self) -> Path:
        return self.settings.path(self.settings.ca_cert)

    def bundle(self, name: str = "Org A") -> Path:
        return self.bundles[name]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def xdshub_command() -> list[str]:
    script = Path(sys.executable).with_name("xdshub")
    if script.exists():
        return [str(script)]
    found = shutil.which("xdshub")
    if found:
        return [found]
    return [sys.executable, "-c", "from hub.cli import main; main()"]


def register(settings: Settings, name: str, oid: str, folder: Path, scopes: list[str] | None = None) -> Path:
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            new = add_organisation(session, settings, name, oid, scopes)
        write_bundle(folder, settings, new)
    finally:
        database.dispose()
    return folder


def _wait_healthy(url: str, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    if not wait_until_healthy(url, ca, STARTUP_SECONDS, alive=lambda: process.poll() is None):
        pytest.fail(f"xdshub serve did not answer within {STARTUP_SECONDS}s (exit code {process.poll()}):\n"
                    f"{log.read_text(errors='replace')[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def serving(data_dir: Path, settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`xdshub serve` on the settings' port until the block ends; the process is yielded (tests may kill it)."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*xdshub_command(), "serve", "--data-dir", str(data_dir), "--port", str(settings.port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_healthy(f"https://127.0.0.1:{settings.port}", settings.path(settings.ca_cert), process, log)
        yield process
    finally:
        _stop(process)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and its workers at once, the way a power cut would stop them."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def new_hub(data_dir: Path, **overrides: object) -> RunningHub:
    """An initialised data dir with "Org A" and "Org B" registered, on a free port (not yet serving)."""
    port = free_port()
    overrides.setdefault("dimse_port", 0)   # hubs run side by side: DIMSE only where a test asks for a port
    settings = initialise(data_dir, port=port, workers=2, threads=4, **overrides)
    hub = RunningHub(data_dir=data_dir, url=f"https://127.0.0.1:{port}", settings=settings)
    for name, oid in ORGANISATIONS.items():
        hub.bundles[name] = register(settings, name, oid, data_dir / "orgs" / name.lower().replace(" ", "-"))
        hub.oids[name] = oid
    hub.log = data_dir / "serve.log"
    return hub


@pytest.fixture(scope="session")
def running_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A running hub over mutual TLS with "Org A" and "Org B" registered."""
    hub = new_hub(tmp_path_factory.mktemp("hub") / "var")
    assert hub.log is not None
    with serving(hub.data_dir, hub.settings, hub.log):
        yield hub


def audit_records(hub: RunningHub, **filters: str) -> list[AuditRecord]:
    """The hub's audit records matching `filters`, in chain order."""
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            rows = list(session.scalars(select(AuditRecord).filter_by(**filters).order_by(AuditRecord.seq)))
            session.expunge_all()
    finally:
        database.dispose()
    return rows


def write_study(folder: Path, datasets: list[Dataset]) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    """The datasets as files in `folder` (for `xdshub import`): their bytes by SOP Instance UID, and the SOP
    Instance UIDs of each series."""
    from tests.factories.dicom import instance_bytes

    instances: dict[str, bytes] = {}
    series: dict[str, list[str]] = {}
    for n, dataset in enumerate(datasets):
        data = instance_bytes(dataset)
        (folder / f"{n}.dcm").write_bytes(data)
        instances[str(dataset.SOPInstanceUID)] = data
        series.setdefault(str(dataset.SeriesInstanceUID), []).append(str(dataset.SOPInstanceUID))
    return instances, series
