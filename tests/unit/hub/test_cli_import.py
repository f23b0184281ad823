"""`xdshub import`: folders, ZIP archives (path tricks and bombs refused), DICOMDIRs, captures, progress, summary."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner, Result
from pydicom.fileset import FileSet
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from hub.settings import load_settings
from repository.import_sources import Item, Rejected, ZipLimits, collect
from repository.tables import DicomInstance
from tests.factories.dicom import instance_bytes, make_study, write_instance
from tests.factories.media import jpeg_bytes, pdf_bytes, png_bytes

ORG = "1.3.6.1.4.1.21367.2026.310"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def do_import(data_dir: Path, *args: str) -> Result:
    return run("import", *args, "--org", ORG, "--data-dir", str(data_dir))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    for args in (("init",), ("org", "add", "Clinic", "--oid", ORG, "--out", str(tmp_path / "bundle"))):
        result = run(*args, "--data-dir", str(folder))
        assert result.exit_code == 0, result.output
    return folder


def rows(data_dir: Path, table: type) -> list:  # type: ignore[type-arg]
    settings = load_settings(data_dir, environ={})
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            found = list(session.scalars(select(table)))
            session.expunge_all()
    finally:
        database.dispose()
    return found


def study_files(n: int = 2, patient_id: str = "IMP1") -> list[bytes]:
    return [instance_bytes(ds) for ds in make_study(n_series=1, per_series=n, patient_id=patient_id, issuer=None)]


def test_a_folder_imports_dicom_and_counts_what_it_skips(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    for n, data in enumerate(study_files(3)):
        (folder / f"{n}.dcm").write_bytes(data)
    (folder / "photo.jpg").write_bytes(jpeg_bytes())
    (folder / "notes.txt").write_text("not DICOM")
    (folder / "README").write_text("neither")
    result = do_import(data_dir, str(tmp_path / "in"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "imported: 3 instance(s) in 1 study(ies)" in lines and "already held: 0" in lines
    assert "skipped: 3" in lines and "refused: 0" in lines
    assert any(line.split() == ["2", "not", "DICOM", "(no", "DICM", "prefix,", "PS3.10", "7.1),", "nor", "JPEG,",
                                "PNG,", "PDF", "or", "MP4"] for line in lines)
    assert "      1  JPEG file: capture needs --patient-id" in lines
    again = do_import(data_dir, str(tmp_path / "in"))
    assert "imported: 0 instance(s) in 0 study(ies)" in again.stdout and "already held: 3" in again.stdout
    assert again.exit_code == 0
    imports = [r for r in rows(data_dir, AuditRecord) if r.event_id == "110107"]
    assert len(imports) == 3                      # one per imported instance, none for those already held


def test_non_dicom_files_are_captured_with_patient_options(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    (folder / "wound.jpg").write_bytes(jpeg_bytes())
    (folder / "scan.png").write_bytes(png_bytes())
    (folder / "consent.pdf").write_bytes(pdf_bytes())
    (folder / "mislabelled.jpg").write_bytes(png_bytes())
    result = do_import(data_dir, str(folder), "--patient-id", "CAP1", "--patient-name", "Roe^Ann",
                       "--birth-date", "1975-06-30", "--device", "WoundCam", "--department", "Surgery",
                       "--body-part", "leg", "--accession", "ACC77", "-v")
    assert result.exit_code == 0, result.output
    assert "imported: 3 instance(s) in 1 study(ies)" in result.stdout
    assert "refused: 1" in result.stdout and "mislabelled.jpg: the file is declared JPEG" in result.stdout
    held = rows(data_dir, DicomInstance)
    assert sorted(r.sop_class_uid for r in held) == ["1.2.840.10008.5.1.4.1.1.104.1",
                                                      "1.2.840.10008.5.1.4.1.1.77.1.4",
                                                      "1.2.840.10008.5.1.4.1.1.77.1.4"]
    assert {(r.patient_id, r.accession_number, r.body_part_examined, r.department, r.station_name,
             r.patient_birth_date) for r in held} == {(f"CAP1^^^&{ORG}&ISO", "ACC77", "LEG", "Surgery", "WoundCam",
                                                       "19750630")}


@pytest.mark.parametrize("args, message", [
    (("--device", "Cam"), "capture options need --patient-id"),
    (("--patient-id", "P1", "--birth-date", "1975-02-30"), "birth_date '1975-02-30' is not a date of birth"),
])
def test_bad_capture_options_stop_before_anything_is_read(data_dir: Path, tmp_path: Path, args: tuple[str, ...],
                                                          message: str) -> None:
    result = do_import(data_dir, str(tmp_path), *args)
    assert result.exit_code == 1 and message in result.output


def test_zip_members_are_read_in_place_and_path_tricks_refused(data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    good = study_files(2)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("study/1.dcm", good[0])
        out.writestr("study/2.dcm", good[1])
        out.writestr("../../etc/evil.dcm", study_files(1)[0])
        out.writestr("/abs/evil.dcm", study_files(1)[0])
        out.writestr("C:/windows/evil.dcm", study_files(1)[0])
        out.writestr("inner.zip", b"PK\x03\x04rest")
    result = do_import(data_dir, str(archive), "-v")
    assert result.exit_code == 0, result.output
    assert "imported: 2 instance(s)" in result.stdout and "refused: 3" in result.stdout
    assert result.stdout.count("path traversal refused") >= 3
    assert "ZIP archive inside an archive (not expanded)" in result.stdout
    assert not (tmp_path.parent / "etc").exists() and len(rows(data_dir, DicomInstance)) == 2


def test_a_zip_bomb_is_refused_whole(data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        out.writestr("ok.dcm", study_files(1)[0])
        out.writestr("zeros.dcm", bytes(20 * 1024 * 1024))
    result = do_import(data_dir, str(archive))
    assert result.exit_code == 1                      # nothing imported, something refused
    assert "ZIP archive refused as a possible zip bomb: member zeros.dcm is compressed" in result.stdout
    assert rows(data_dir, DicomInstance) == []


def test_zip_limits_on_total_size_and_member_count(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for n in range(5):
            out.writestr(f"{n}.dcm", bytes(400))
    assert collect([archive], ZipLimits(max_total=1000)) == [
        Rejected(str(archive), "ZIP archive refused as a possible zip bomb: it unpacks to 2000 bytes, more than "
                               "the limit of 1000")]
    assert "5 members, more than 4" in collect([archive], ZipLimits(max_members=4))[0].reason  # type: ignore[union-attr]
    entries = collect([archive])
    assert [e.name for e in entries if isinstance(e, Item)] == [f"{n}.dcm" for n in range(5)]
    with entries[0].open() as stream:  # type: ignore[union-attr]
        assert stream.read() == bytes(400) and stream.seekable()


def dicomdir_folder(tmp_path: Path, count: int = 3) -> tuple[Path, FileSet]:
    staging, media = tmp_path / "staging", tmp_path / "media"
    staging.mkdir()
    fileset = FileSet()
    for n, data in enumerate(study_files(count, "DIR1")):
        (staging / f"{n}.dcm").write_bytes(data)
        fileset.add(pydicom.dcmread(staging / f"{n}.dcm"))
    fileset.write(media)
    # FileSet stages in a TemporaryDirectory it never cleans up itself (a ResourceWarning when collected)
    fileset._stage["t"].cleanup()
    return media, fileset


def test_a_dicomdir_brings_the_files_it_references(data_dir: Path, tmp_path: Path) -> None:
    media, _ = dicomdir_folder(tmp_path)
    (media / "extra.dcm").write_bytes(study_files(1, "DIR1")[0])
    by_index = do_import(data_dir, str(media / "DICOMDIR"), "-v")
    assert by_index.exit_code == 0, by_index.output
    assert "imported: 3 instance(s) in 1 study(ies)" in by_index.stdout
    by_folder = do_import(data_dir, str(media))      # the index's files once, then the folder's other file
    assert "imported: 1 instance(s)" in by_folder.stdout and "already held: 3" in by_folder.stdout
    assert "skipped: 0" in by_folder.stdout and "refused: 0" in by_folder.stdout


def test_a_dicomdir_pointing_outside_its_folder_is_refused(data_dir: Path, tmp_path: Path) -> None:
    media, _ = dicomdir_folder(tmp_path, count=2)
    outside = tmp_path / "secret"
    outside.mkdir()
    write_instance(make_study(1, 1, patient_id="OTHER")[0], outside / "X")
    (media / "LINK").symlink_to(outside, target_is_directory=True)
    index = pydicom.dcmread(media / "DICOMDIR")
    images = [r for r in index.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    images[0].ReferencedFileID = ["LINK", "X"]                  # a symbolic link out of the folder
    with warnings.catch_warnings():                             # pydicom warns: ".." is no CS value
        warnings.simplefilter("ignore", UserWarning)
        images[1].ReferencedFileID = ["..", "secret", "X"]      # not a DICOM file ID
    index.save_as(media / "DICOMDIR")
    result = do_import(data_dir, str(media / "DICOMDIR"))
    assert result.exit_code == 1, result.output
    assert "LINK\\X: Referenced File ID leads outside the DICOMDIR's folder" in result.stdout
    assert "..\\secret\\X: Referenced File ID is not a DICOM file ID (PS3.10 8.2)" in result.stdout
    assert rows(data_dir, DicomInstance) == []


def test_progress_bar_on_stderr_only_when_asked_or_a_terminal(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n, data in enumerate(study_files(2)):
        (folder / f"{n}.dcm").write_bytes(data)
    shown = do_import(data_dir, str(folder), "--progress")
    assert "importing 2 item(s)" in shown.stderr and "importing" not in shown.stdout
    quiet = do_import(data_dir, str(folder))                    # CliRunner's stderr is no terminal
    assert "importing" not in quiet.stderr and "already held: 2" in quiet.stdout


def test_broken_dicom_is_refused_and_exit_1_when_nothing_was_imported(data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    instance = make_study(1, 1)[0]
    del instance.StudyInstanceUID
    write_instance(instance, broken)
    result = do_import(data_dir, str(broken))
    assert result.exit_code == 1
    assert "refused: 1" in result.stdout and "broken.dcm:" in result.stdout


def test_collect_lists_a_zip_member_as_seekable_dicom(tmp_path: Path) -> None:
    archive = tmp_path / "one.zip"
    data = study_files(1)[0]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("a/b/one.dcm", data)
    [entry] = collect([archive])
    assert isinstance(entry, Item) and entry.label == f"{archive}!a/b/one.dcm" and entry.name == "one.dcm"
    with entry.open() as stream:
        assert pydicom.dcmread(io.BytesIO(stream.read())).PatientID == "IMP1"
