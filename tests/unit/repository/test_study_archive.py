"""Study download as a ZIP with a DICOMDIR (repository.study_archive): real instances in a real file blob store.

Each archive is streamed to a file, then opened with zipfile and unpacked;
the DICOMDIR is read back with pydicom's FileSet, which follows the record
offsets and resolves each Referenced File ID to an unpacked file.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tracemalloc
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.fileset import FileSet
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

from repository import study_archive
from repository.blobstore import BlobNotFound, BlobStore, FileBlobStore
from repository.study_archive import MAX_CHUNK, ArchiveEntry, ArchiveError, archive_name, study_zip
from repository.tables import DicomInstance
from tests.factories.dicom import instance_bytes, make_instance, pixel_values

MIB = 1024 * 1024
# PS3.10 8.5: at most 8 components, each 1 to 8 of uppercase A-Z, 0-9 and underscore
FILE_ID = re.compile(r"[A-Z0-9_]{1,8}(/[A-Z0-9_]{1,8}){0,7}")
PATIENT_NAME = "Müller^Anna"            # ISO_IR 100: the records keep the instances' character set


def multi_frame(**kwargs: object) -> Dataset:
    ds = make_instance(rows=16, columns=16, **kwargs)  # type: ignore[arg-type]
    ds.NumberOfFrames = 3
    ds.PixelData = pixel_values(16, 16).tobytes() * 3
    return ds


def encapsulated_pdf(**kwargs: object) -> Dataset:
    """An Encapsulated PDF (PS3.3 A.45.1) made from a CT of the same study: image attributes out, document in."""
    ds = make_instance(**kwargs)  # type: ignore[arg-type]
    for keyword in ("ImageType", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PixelData"):
        del ds[keyword]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = EncapsulatedPDFStorage
    ds.Modality = "DOC"
    ds.ContentDate, ds.ContentTime = "20260115", "101500"
    ds.DocumentTitle = "Report"
    ds.ConceptNameCodeSequence = []
    ds.BurnedInAnnotation = "YES"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = b"%PDF-1.4\n" + b"% filler line of the test document\n" * 1200 + b"%%EOF\n"   # ~42 KB: left unread
    ds.EncapsulatedDocument = pdf + b"\0" * (len(pdf) % 2)
    return ds


def real_study() -> list[Dataset]:
    """Two series: CT (three instances, the second multi-frame) and DOC (an Encapsulated PDF)."""
    study, ct, doc = generate_uid(), generate_uid(), generate_uid()
    datasets = [make_instance(study_uid=study, series_uid=ct, instance_number=1),
                multi_frame(study_uid=study, series_uid=ct, instance_number=2),
                make_instance(study_uid=study, series_uid=ct, instance_number=3),
                encapsulated_pdf(study_uid=study, series_uid=doc, series_number=2, instance_number=1)]
    for ds in datasets:
        ds.PatientName = PATIENT_NAME
    return datasets


def stored(store: BlobStore, datasets: Iterable[Dataset]) -> list[ArchiveEntry]:
    """Each instance put in the store, and its entry made from a (transient) DicomInstance row."""
    entries = []
    for ds in datasets:
        blob = store.put(io.BytesIO(instance_bytes(ds)))
        row = DicomInstance(sop_instance_uid=str(ds.SOPInstanceUID), sha256=blob.sha256, size=blob.size)
        entries.append(ArchiveEntry.from_instance(row))
    return entries


def save(chunks: Iterator[bytes], path: Path) -> list[int]:
    """Write the chunks to `path` as a response body would go out; answer their sizes."""
    sizes = []
    with path.open("wb") as out:
        for chunk in chunks:
            sizes.append(len(chunk))
            out.write(chunk)
    return sizes


@pytest.fixture
def read_fileset() -> Iterator[object]:
    """FileSet loader; FileSet stages in a TemporaryDirectory it never cleans itself (a ResourceWarning)."""
    loaded: list[FileSet] = []

    def load(dicomdir: Path, **kwargs: bool) -> FileSet:
        fileset = FileSet()
        loaded.append(fileset)
        fileset.load(dcmread(dicomdir), **kwargs)
        return fileset

    yield load
    for fileset in loaded:
        fileset._stage["t"].cleanup()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_archive_is_dicom_media_whose_dicomdir_lists_every_instance(
        file_store: FileBlobStore, tmp_path: Path, read_fileset: object) -> None:
    datasets = real_study()
    entries = stored(file_store, datasets)
    save(study_zip(file_store, entries), tmp_path / "study.zip")

    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == ["DICOMDIR", "DICOM/P0001/S0001/R0001/I0001", "DICOM/P0001/S0001/R0001/I0002",
                         "DICOM/P0001/S0001/R0001/I0003", "DICOM/P0001/S0001/R0002/I0001"]
        assert all(FILE_ID.fullmatch(name) for name in names)
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        held = {name: sha256(archive.read(name)) for name in names[1:]}
        assert sorted(held.values()) == sorted(entry.sha256 for entry in entries)     # the blobs, byte for byte
        archive.extractall(tmp_path / "media")

    dicomdir = dcmread(tmp_path / "media" / "DICOMDIR")
    assert dicomdir.file_meta.MediaStorageSOPClassUID == MediaStorageDirectoryStorage
    assert dicomdir.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert [r.DirectoryRecordType for r in dicomdir.DirectoryRecordSequence] == [
        "PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE", "IMAGE", "SERIES", "ENCAP DOC"]

    fileset = FileSet(dicomdir)                  # what a DICOM viewer does with the media
    fileset._stage["t"].cleanup()
    assert len(fileset) == 4
    strict = read_fileset(tmp_path / "media" / "DICOMDIR", raise_orphans=True)  # type: ignore[operator]
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    entry_of = {entry.sop_instance_uid: entry for entry in entries}
    for instance in strict:
        file_id = Path(instance.path).relative_to(tmp_path / "media").as_posix()
        assert sha256(Path(instance.path).read_bytes()) == held[file_id] == entry_of[instance.SOPInstanceUID].sha256
        source = by_uid.pop(instance.SOPInstanceUID)
        assert instance.SOPClassUID == source.SOPClassUID
        assert instance.TransferSyntaxUID == ExplicitVRLittleEndian
        assert instance.InstanceNumber == source.InstanceNumber
        assert instance.SeriesInstanceUID == source.SeriesInstanceUID
        assert instance.StudyInstanceUID == source.StudyInstanceUID
        assert (instance.PatientID, instance.PatientName) == ("P1", PATIENT_NAME)
    assert by_uid == {}
    pdf = strict.find(DirectoryRecordType="ENCAP DOC")
    assert [i.MIMETypeOfEncapsulatedDocument for i in pdf] == ["application/pdf"]
    assert strict.find_values("SeriesNumber") == [1, 2]
    assert strict.find_values("NumberOfFrames", load=True) == [3]


def test_names_carry_no_uid_or_patient_data_and_the_download_name_neither(file_store: FileBlobStore,
                                                                        tmp_path: Path) -> None:
    datasets = real_study()
    save(study_zip(file_store, stored(file_store, datasets)), tmp_path / "study.zip")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        listing = " ".join(archive.namelist())
    name = archive_name(str(datasets[0].StudyInstanceUID))
    for secret in (str(datasets[0].StudyInstanceUID), str(datasets[0].SOPInstanceUID), "P1", "MULLER"):
        assert secret not in listing and secret not in name
    assert re.fullmatch(r"study-[0-9a-f]{8}\.zip", name)
    assert name == archive_name(str(datasets[0].StudyInstanceUID)) != archive_name(generate_uid())


def test_a_big_instance_streams_in_bounded_chunks(file_store: FileBlobStore, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    big = make_instance(study_uid=study, series_uid=series, rows=1600, columns=1600)     # 5.1 MB of pixel data
    small = make_instance(study_uid=study, series_uid=series, instance_number=2)
    entries = stored(file_store, [big, small])
    assert entries[0].size > 5_000_000

    tracemalloc.start()
    try:
        sizes = save(study_zip(file_store, entries), tmp_path / "study.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sizes) >= 5 and max(sizes) <= MAX_CHUNK
    assert peak < 3 * MIB                        # never the instance, let alone the study, in memory
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert sha256(archive.read("DICOM/P0001/S0001/R0001/I0001")) == entries[0].sha256


def test_both_backends_stream_the_stored_bytes(store: BlobStore, tmp_path: Path) -> None:
    """Local files and S3 bodies (read as streams, headers through a spooled copy) give the same archive."""
    entries = stored(store, real_study())
    save(study_zip(store, entries), tmp_path / "study.zip")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert [sha256(archive.read(name)) for name in archive.namelist()[1:]] == [e.sha256 for e in entries]
    chunks = study_zip(store, entries)
    store.delete(entries[-1].sha256)
    with pytest.raises(BlobNotFound):
        save(chunks, tmp_path / "cut.zip")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(tmp_path / "cut.zip")


def test_the_blobs_are_read_as_the_chunks_are_consumed(file_store: FileBlobStore, tmp_path: Path) -> None:
    """The headers are read up front; a blob deleted after that is only missed when its turn comes."""
    entries = stored(file_store, real_study())
    chunks = study_zip(file_store, entries)
    file_store.delete(entries[2].sha256)
    with pytest.raises(BlobNotFound):
        save(chunks, tmp_path / "cut.zip")
    cut = (tmp_path / "cut.zip").read_bytes()
    assert cut.startswith(b"PK\x03\x04")         # the stream had begun: DICOMDIR and two instances went out
    with pytest.raises(zipfile.BadZipFile):      # no central directory: the cut archive does not open
        zipfile.ZipFile(tmp_path / "cut.zip")


def test_a_missing_blob_is_an_error_before_anything_streams(file_store: FileBlobStore) -> None:
    entries = stored(file_store, real_study())
    file_store.delete(entries[-1].sha256)
    with pytest.raises(BlobNotFound):
        study_zip(file_store, entries)


def shorter(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def longer(path: Path) -> None:
    path.write_bytes(path.read_bytes() + bytes(100))


def altered(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF                             # in the pixel data: the header still reads
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "message"), [
    (shorter, "ends after"),
    (longer, "longer than its recorded"),
    (altered, "do not match its SHA-256"),
])
def test_a_blob_that_is_not_what_its_row_says_aborts_the_stream(file_store: FileBlobStore, tmp_path: Path,
                                                                damage: object, message: str) -> None:
    entries = stored(file_store, real_study())
    damage(file_store.path(entries[1].sha256))  # type: ignore[operator]
    with pytest.raises(ArchiveError, match=message):
        save(study_zip(file_store, entries), tmp_path / "cut.zip")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(tmp_path / "cut.zip")


def test_a_client_going_away_closes_the_stream_quietly(file_store: FileBlobStore) -> None:
    chunks = study_zip(file_store, stored(file_store, real_study()))
    assert next(chunks).startswith(b"PK\x03\x04")
    chunks.close()                               # what the server does when the connection drops
    assert list(chunks) == []


def test_zip64_entries_read_back(file_store: FileBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries over 2 GiB get ZIP64 headers: forced here for every entry by lowering the threshold."""
    monkeypatch.setattr(study_archive, "ZIP64_THRESHOLD", 0)
    entries = stored(file_store, real_study())
    save(study_zip(file_store, entries), tmp_path / "study.zip")
    data = (tmp_path / "study.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert archive.testzip() is None
        assert sorted(sha256(archive.read(n)) for n in archive.namelist()[1:]) == sorted(e.sha256 for e in entries)
        for info in archive.infolist():
            name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            extra = data[info.header_offset + 30 + name_length:][:extra_length]
            assert extra[:2] == b"\x01\x00"        # the ZIP64 extended information extra field (APPNOTE 4.5.3)


def test_missing_type_1_keys_get_placeholders_in_the_dicomdir_only(file_store: FileBlobStore, tmp_path: Path,
                                                                   read_fileset: object) -> None:
    ds = make_instance()
    ds.PatientID = ""
    for keyword in ("StudyID", "StudyTime", "SeriesNumber", "InstanceNumber"):
        del ds[keyword]
    entries = stored(file_store, [ds])
    save(study_zip(file_store, entries), tmp_path / "study.zip")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert sha256(archive.read("DICOM/P0001/S0001/R0001/I0001")) == entries[0].sha256
        archive.extractall(tmp_path / "media")
    [instance] = read_fileset(tmp_path / "media" / "DICOMDIR", raise_orphans=True)  # type: ignore[operator]
    assert (instance.PatientID, instance.StudyID, instance.StudyTime) == ("UNKNOWN", "1", "000000")
    assert (instance.SeriesNumber, instance.InstanceNumber) == (1, 1)


def test_an_instance_listed_twice_is_archived_once(file_store: FileBlobStore, tmp_path: Path) -> None:
    entries = stored(file_store, real_study())
    save(study_zip(file_store, entries + entries[:2]), tmp_path / "study.zip")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert len(archive.namelist()) == 1 + len(entries)


def test_an_entry_whose_blob_holds_another_instance_is_refused(file_store: FileBlobStore) -> None:
    [entry] = stored(file_store, [make_instance()])
    with pytest.raises(ArchiveError, match="does not hold instance"):
        study_zip(file_store, [ArchiveEntry(generate_uid(), entry.sha256, entry.size)])
