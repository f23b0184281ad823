"""A study as a ZIP download: DICOM media (PS3.10) with a DICOMDIR, streamed in bounded memory.

Layout of the archive (PS3.10 8, PS3.3 F)::

    DICOMDIR                        the Media Storage Directory of the File-set
    DICOM/P0001/S0001/R0001/I0001   patient / study / series / instance, numbered in order

File IDs are PS3.10 8.5 conforming (at most 8 components of at most 8
characters, uppercase A-Z, 0-9 and underscore) and carry no UID or patient
data, so no name leaks anything or plays a path trick. The instances are the
stored blobs byte for byte.

`study_zip` plans the archive before anything streams: it reads the header of
each instance (no pixel data; `open_seekable` spools an S3 blob to a
temporary file one at a time) and builds the DICOMDIR: PATIENT, STUDY and
SERIES records and, per instance, the record type pydicom's File-set support
assigns to its SOP class (IMAGE, ENCAP DOC, SR DOCUMENT...; PS3.3 F.4,
records filled by `pydicom.fileset.DIRECTORY_RECORDERS`). A missing blob or an
unreadable instance raises there, while the caller can still answer an error.
Type 1 record keys the instance lacks (PS3.3 F.5) are filled in the record
only: Patient ID "UNKNOWN", Study Date 19000101, Study Time 000000, Study ID,
Series Number and Instance Number by position, Modality "OT".

The returned iterator then writes the ZIP with `zipfile` on a write-only sink
(entries with data descriptors, as the sink cannot seek) and yields what was
written once it passes 512 KiB and after each entry: nothing is buffered
beyond `MAX_CHUNK` bytes besides zipfile's own list of entries. Entries are ZIP_STORED: DICOM
pixel data is mostly compressed already or compresses poorly, and storing
costs no CPU. ZIP64 is used for entries over 2 GiB and, automatically, for
archives over 4 GiB or 65535 entries. Readers that only follow local headers
(not the central directory) cannot read stored entries with data descriptors.

A blob that is missing, shorter or longer than its recorded size or whose
SHA-256 differs raises while streaming (`ArchiveError`, `BlobNotFound`): the
response is already under way, so the caller can only abort the connection,
and the central directory is never written after an error: a cut archive
never looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import DIRECTORY_RECORDERS
from pydicom.fileset import _four_level_record_type as leaf_record_type  # pydicom's SOP class table, PS3.3 F.4
from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

from repository.blobstore import BlobStore, open_seekable
from repository.dicomfile import HEADER_DEFER_SIZE, InvalidDicom, read_dataset

if TYPE_CHECKING:
    from repository.tables import DicomInstance

__all__ = ["MAX_CHUNK", "ArchiveEntry", "ArchiveError", "archive_name", "study_zip"]

MAX_CHUNK = 1024 * 1024          # no chunk yielded is larger
READ_SIZE = 256 * 1024           # a blob is read in pieces of this size
_FLUSH_AT = 512 * 1024           # what is buffered is yielded from this size on (stays under MAX_CHUNK)
ZIP64_THRESHOLD = zipfile.ZIP64_LIMIT
DICOMDIR = "DICOMDIR"
MEDIA_FOLDER = "DICOM"

# Type 1 keys of the records (PS3.3 F.5) an instance may lack or leave empty, and what the record gets instead
_PLACEHOLDERS = {"PatientID": "UNKNOWN", "StudyDate": "19000101", "StudyTime": "000000", "Modality": "OT"}


class ArchiveError(Exception):
    """The archive cannot be made: an instance cannot be listed, or a blob is not what its row says."""


@dataclass(frozen=True)
class ArchiveEntry:
    """One instance to put in the archive: which blob holds it and how big it is."""

    sop_instance_uid: str
    sha256: str         # the blob's address
    size: int           # bytes of the blob

    @classmethod
    def from_instance(cls, row: DicomInstance) -> ArchiveEntry:
        return cls(sop_instance_uid=row.sop_instance_uid, sha256=row.sha256, size=row.size)


def archive_name(study_uid: str) -> str:
    """The download's file name, `study-<8 hex digits>.zip`: derived from the study UID, no patient data."""
    return f"study-{hashlib.sha256(study_uid.encode()).hexdigest()[:8]}.zip"


def study_zip(store: BlobStore, entries: Iterable[ArchiveEntry]) -> Iterator[bytes]:
    """The ZIP of the instances with their DICOMDIR, as chunks of at most MAX_CHUNK bytes.

    The headers are read and the DICOMDIR built now (errors raise here); the
    blobs are read as the chunks are consumed. Instances keep the order of
    `entries` within their series; an instance listed twice is archived once.
    """
    members, dicomdir = _plan(store, entries)
    return _stream(store, members, dicomdir)


# -- the DICOMDIR --------------------------------------------------------------------------------------------------

@dataclass
class _Node:
    """A directory record and the records below it, by key (Patient ID, Study or Series Instance UID)."""

    record: Dataset
    component: str                                   # its File ID component
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class _Member:
    entry: ArchiveEntry
    name: str                                        # its path in the ZIP, the File ID joined by "/"


def _plan(store: BlobStore, entries: Iterable[ArchiveEntry]) -> tuple[list[_Member], bytes]:
    patients: dict[str, _Node] = {}
    members: list[_Member] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.sop_instance_uid in seen:
            continue
        seen.add(entry.sop_instance_uid)
        header = _read_header(store, entry)
        try:
            for keyword, placeholder in _PLACEHOLDERS.items():
                _fill(header, keyword, placeholder)
            patient = _branch(patients, str(header.PatientID), "P", "PATIENT", header)
            _fill(header, "StudyID", str(len(patient.children) + 1))
            study = _branch(patient.children, str(header.StudyInstanceUID), "S", "STUDY", header)
            _fill(header, "SeriesNumber", len(study.children) + 1)
            series = _branch(study.children, str(header.SeriesInstanceUID), "R", "SERIES", header)
            _fill(header, "InstanceNumber", len(series.children) + 1)
            leaf = _record(leaf_record_type(header), header)
        except (AttributeError, ValueError) as exc:
            raise ArchiveError(f"instance {entry.sop_instance_uid} cannot be listed in a DICOMDIR: {exc}") from exc
        component = f"I{len(series.children) + 1:04d}"
        file_id = [MEDIA_FOLDER, patient.component, study.component, series.component, component]
        leaf.ReferencedFileID = file_id
        leaf.ReferencedSOPClassUIDInFile = header.SOPClassUID
        leaf.ReferencedSOPInstanceUIDInFile = header.SOPInstanceUID
        leaf.ReferencedTransferSyntaxUIDInFile = header.file_meta.TransferSyntaxUID
        series.children[str(header.SOPInstanceUID)] = _Node(leaf, component)
        members.append(_Member(entry, "/".join(file_id)))
    return members, _encode_dicomdir(list(patients.values()))


def _read_header(store: BlobStore, entry: ArchiveEntry) -> Dataset:
    """The instance's data set up to its pixel data, large values left unread."""
    with open_seekable(store, entry.sha256) as stream:
        try:
            header = read_dataset(stream, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE)
        except InvalidDicom as exc:
            raise ArchiveError(f"instance {entry.sop_instance_uid} cannot be read: {exc}") from None
    if header.get("SOPInstanceUID") != entry.sop_instance_uid:
        raise ArchiveError(f"blob {entry.sha256} does not hold instance {entry.sop_instance_uid}")
    return header


def _fill(header: Dataset, keyword: str, value: object) -> None:
    """Give a Type 1 key the instance lacks (or leaves empty) a value, in this in-memory header only."""
    if keyword not in header or header[keyword].VM == 0:
        setattr(header, keyword, value)


def _branch(level: dict[str, _Node], key: str, prefix: str, record_type: str, header: Dataset) -> _Node:
    """The node of `key` at this level, made with its record the first time."""
    node = level.get(key)
    if node is None:
        node = level[key] = _Node(_record(record_type, header), f"{prefix}{len(level) + 1:04d}")
    return node


def _record(record_type: str, header: Dataset) -> Dataset:
    """A directory record of this type for the instance (PS3.3 F.3.2.2), its offsets still 0."""
    record = DIRECTORY_RECORDERS[record_type](header)
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = record_type
    if "SpecificCharacterSet" in header:
        record.SpecificCharacterSet = header.SpecificCharacterSet
    return record


def _encode_dicomdir(patients: list[_Node]) -> bytes:
    """The DICOMDIR file: the records depth first, linked by their byte offsets (PS3.3 F.3.2.1).

    Encoded twice: the offsets are read back from the first encoding (where
    each record item starts), then filled in; UL values keep the length.
    """
    flat: list[_Node] = []

    def walk(node: _Node) -> None:
        flat.append(node)
        for child in node.children.values():
            walk(child)

    for patient in patients:
        walk(patient)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = ""
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = [node.record for node in flat]
    first = _encoded(ds)
    items = dcmread(io.BytesIO(first)).DirectoryRecordSequence
    offset = {id(node): item.seq_item_tell for node, item in zip(flat, items, strict=True)}

    def link(level: list[_Node]) -> None:
        for n, node in enumerate(level):
            children = list(node.children.values())
            node.record.OffsetOfTheNextDirectoryRecord = offset[id(level[n + 1])] if n + 1 < len(level) else 0
            node.record.OffsetOfReferencedLowerLevelDirectoryEntity = offset[id(children[0])] if children else 0
            link(children)

    link(patients)
    if patients:
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = offset[id(patients[0])]
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = offset[id(patients[-1])]
    final = _encoded(ds)
    if len(final) != len(first):   # cannot happen: only fixed-length UL values changed
        raise ArchiveError("DICOMDIR offsets moved while encoding")
    return final


def _encoded(ds: Dataset) -> bytes:
    sink = io.BytesIO()
    ds.save_as(sink, enforce_file_format=True)
    return sink.getvalue()


# -- the ZIP -------------------------------------------------------------------------------------------------------

class _Sink:
    """A write-only file for zipfile: keeps what is written until taken; after `abandon`, drops it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0
        self._abandoned = False

    def write(self, data: bytes) -> int:
        if not self._abandoned:
            self._parts.append(bytes(data))
            self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        """What was written, in chunks of at most MAX_CHUNK bytes; the sink is empty afterwards."""
        data = b"".join(self._parts)
        self._parts, self.size = [], 0
        for start in range(0, len(data), MAX_CHUNK):
            yield data[start:start + MAX_CHUNK]

    def abandon(self) -> None:
        self._parts, self.size, self._abandoned = [], 0, True


def _stream(store: BlobStore, members: list[_Member], dicomdir: bytes) -> Iterator[bytes]:
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    now = time.localtime()
    when = (now.tm_year, now.tm_mon, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec)
    try:
        yield from _add(archive, sink, _info(DICOMDIR, when), io.BytesIO(dicomdir), len(dicomdir), None)
        for member in members:
            entry = member.entry
            with store.open(entry.sha256) as blob:
                yield from _add(archive, sink, _info(member.name, when), blob, entry.size, entry.sha256)
        archive.close()                           # the central directory: the archive is complete
        yield from sink.take()
    except BaseException:
        sink.abandon()                            # nothing more reaches the client, no central directory
        with contextlib.suppress(Exception):
            archive.close()                       # releases zipfile's state; what it writes is dropped
        raise


def _info(name: str, when: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16              # rw-r--r-- when unpacked
    return info


def _add(archive: zipfile.ZipFile, sink: _Sink, info: zipfile.ZipInfo, source: BinaryIO, size: int,
         sha256: str | None) -> Iterator[bytes]:
    """Copy `size` bytes of `source` into a new entry, yielding the buffer past _FLUSH_AT and at the end."""
    digest, copied = hashlib.sha256(), 0
    with archive.open(info, "w", force_zip64=size > ZIP64_THRESHOLD) as target:
        while piece := source.read(READ_SIZE):
            copied += len(piece)
            if copied > size:
                raise ArchiveError(f"{info.filename}: the blob is longer than its recorded {size} bytes")
            digest.update(piece)
            target.write(piece)
            if sink.size >= _FLUSH_AT:
                yield from sink.take()
    if copied < size:
        raise ArchiveError(f"{info.filename}: the blob ends after {copied} of its {size} bytes")
    if sha256 is not None and digest.hexdigest() != sha256:
        raise ArchiveError(f"{info.filename}: the blob's bytes do not match its SHA-256 {sha256}")
    yield from sink.take()                        # each whole entry goes out at once: the download starts early
