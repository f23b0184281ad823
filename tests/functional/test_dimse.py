"""DICOM from a modality: DCMTK's echoscu and storescu against `xdshub serve`, which runs the DIMSE listener.

The hub is initialised with a DIMSE port of its own, "MODALITY1" is registered
to "Org A" (`xdshub ae add`), and `xdshub serve` starts `xdshub dimse serve`
beside gunicorn. Skipped, saying why, where DCMTK (Debian package dcmtk,
which .ci/run installs) is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from repository.tables import DicomInstance
from tests.factories.dicom import make_instance, write_instance
from tests.functional.conftest import RunningHub, free_port, new_hub, serving

pytestmark = pytest.mark.functional

ECHOSCU, STORESCU = shutil.which("echoscu"), shutil.which("storescu")
CALLING_AE = "MODALITY1"
STARTUP_SECONDS = 30


def dcmtk() -> tuple[str, str]:
    if not ECHOSCU or not STORESCU:
        pytest.skip("DCMTK's echoscu and storescu are not installed (Debian package dcmtk; .ci/run installs it)")
    return ECHOSCU, STORESCU


def echo(hub: RunningHub, calling: str = CALLING_AE) -> subprocess.CompletedProcess[str]:
    echoscu, _ = dcmtk()
    return subprocess.run([echoscu, "-aet", calling, "-aec", "XDSHUB", "-to", "10", "127.0.0.1",
                           str(hub.settings.dimse_port)], capture_output=True, text=True, timeout=60)


def store(hub: RunningHub, *files: Path, calling: str = CALLING_AE) -> subprocess.CompletedProcess[str]:
    _, storescu = dcmtk()
    return subprocess.run([storescu, "-v", "-aet", calling, "-aec", "XDSHUB", "-to", "10", "127.0.0.1",
                           str(hub.settings.dimse_port), *map(str, files)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def dimse_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    dcmtk()
    hub = new_hub(tmp_path_factory.mktemp("dimse") / "var", dimse_port=free_port())
    assert hub.log is not None
    result = CliRunner().invoke(main, ["ae", "add", CALLING_AE, "--org", hub.oids["Org A"], "--data-dir",
                                       str(hub.data_dir)])
    assert result.exit_code == 0, result.output
    with serving(hub.data_dir, hub.settings, hub.log):
        deadline = time.monotonic() + STARTUP_SECONDS
        while echo(hub).returncode != 0:
            if time.monotonic() > deadline:
                pytest.fail(f"the DIMSE listener did not answer C-ECHO within {STARTUP_SECONDS}s:\n"
                            f"{hub.log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        yield hub


def rows(hub: RunningHub, kind: type, **where: str) -> list:  # type: ignore[type-arg]
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            query = select(kind).filter_by(**where)
            found = list(session.scalars(query))
            session.expunge_all()
            return found
    finally:
        database.dispose()


def wait_for(hub: RunningHub, kind: type, seconds: float = 15, **where: str) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + seconds
    while not (found := rows(hub, kind, **where)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_echoscu_of_a_registered_ae_succeeds_and_a_stranger_is_rejected(dimse_hub: RunningHub) -> None:
    assert echo(dimse_hub).returncode == 0
    refused = echo(dimse_hub, "STRANGER")
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stdout + refused.stderr
    alerts = wait_for(dimse_hub, AuditRecord, event_id="110113", event_type="110126")
    assert any("STRANGER" in alert.message for alert in alerts)


def test_storescu_stores_a_study_ingested_for_the_organisation_and_audited(dimse_hub: RunningHub,
                                                                          tmp_path: Path) -> None:
    study = [make_instance(study_uid=None, instance_number=1)]
    study.append(make_instance(study_uid=study[0].StudyInstanceUID, series_uid=study[0].SeriesInstanceUID,
                               instance_number=2))
    files = []
    for n, ds in enumerate(study):
        files.append(tmp_path / f"{n}.dcm")
        write_instance(ds, files[-1])
    result = store(dimse_hub, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    held = rows(dimse_hub, DicomInstance, study_instance_uid=str(study[0].StudyInstanceUID))
    assert {row.sop_instance_uid for row in held} == {str(ds.SOPInstanceUID) for ds in study}
    [transferred] = wait_for(dimse_hub, AuditRecord, event_id="110104", study_uid=str(study[0].StudyInstanceUID))
    assert transferred.organisation_oid == dimse_hub.oids["Org A"] and transferred.outcome == 0
    again = store(dimse_hub, files[0])              # the same bytes again: success, nothing changes
    assert again.returncode == 0, again.stdout + again.stderr


def test_storescu_of_an_image_without_pixel_data_is_refused(dimse_hub: RunningHub, tmp_path: Path) -> None:
    ds = make_instance()
    del ds.PixelData
    write_instance(ds, tmp_path / "empty.dcm")
    result = store(dimse_hub, tmp_path / "empty.dcm")
    output = result.stdout + result.stderr
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in output, output   # 0xA900
    assert rows(dimse_hub, DicomInstance, sop_instance_uid=str(ds.SOPInstanceUID)) == []
