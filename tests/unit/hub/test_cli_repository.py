"""The xdshub commands of the repository: import, manifest (write and publish), storage gc."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from hub.settings import load_settings
from tests.factories.dicom import make_study, write_instance

ORG = "1.3.6.1.4.1.21367.2026.300"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    for args in (("init",), ("org", "add", "Imaging", "--oid", ORG, "--out", str(tmp_path / "bundle"))):
        result = run(*args, "--data-dir", str(folder))
        assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "study"
    folder.mkdir()
    datasets = make_study(n_series=1, per_series=2, patient_id="CLI1", issuer="1.2.3.4")
    for n, dataset in enumerate(datasets):
        write_instance(dataset, folder / f"{n}.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    return folder, str(datasets[0].StudyInstanceUID)


def audit_trail(data_dir: Path) -> list[AuditRecord]:
    settings = load_settings(data_dir, environ={})
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            rows = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
            session.expunge_all()
    finally:
        database.dispose()
    return rows


def test_import_stores_the_instances_and_names_each_skipped_file(data_dir: Path, study: tuple[Path, str]) -> None:
    folder, _ = study
    result = run("import", str(folder), "--org", ORG, "--verbose", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "imported: 2 instance(s) in 1 study(ies)" in result.output and "skipped: 1" in result.output
    assert "skipped " in result.output and "notes.txt" in result.output


def test_import_for_an_unknown_organisation_is_a_clear_error(data_dir: Path, study: tuple[Path, str]) -> None:
    result = run("import", str(study[0]), "--org", "1.2.999", "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert "no organisation with OID 1.2.999" in result.output


def test_manifest_written_then_published(data_dir: Path, study: tuple[Path, str], tmp_path: Path) -> None:
    folder, study_uid = study
    assert run("import", str(folder), "--org", ORG, "--data-dir", str(data_dir)).exit_code == 0
    out = tmp_path / "kos.dcm"
    result = run("manifest", study_uid, "--out", str(out), "--publish", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    kos = pydicom.dcmread(out)
    assert kos.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59" and kos.StudyInstanceUID == study_uid
    assert "published manifest" in result.output and "(2 instances, patient CLI1^^^&1.2.3.4&ISO)" in result.output
    trail = audit_trail(data_dir)
    assert [(r.event_id, r.event_type) for r in trail if r.event_type in ("110107", "RAD-68")] == \
        [("110107", "110107"), ("110107", "110107"), ("110107", "RAD-68")]   # two imports, then the publication
    assert {r.patient_id for r in trail if r.event_id == "110107"} == {"CLI1^^^&1.2.3.4&ISO"}
    assert ("110113", "110137") in {(r.event_id, r.event_type) for r in trail}   # org add: rights given


@pytest.mark.parametrize("args, message", [
    (("1.2.3.404", "--publish"), "holds no instance of study 1.2.3.404"),
    (("1.2.3.404",), "--out FILE, --publish, or both"),
])
def test_manifest_user_errors(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    result = run("manifest", *args, "--data-dir", str(data_dir))
    assert result.exit_code == 1
    assert message in result.output


def test_storage_gc_reports_what_it_did(data_dir: Path) -> None:
    result = run("storage", "gc", "--grace", "0", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "0 unreferenced deleted" in result.output
