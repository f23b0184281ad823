"""STOW-RS Store Instances (PS3.18 10.5, Annex I; IHE RAD-108 Store Instances over the Web).

Each part of the multipart/related body is handed to `repository.ingest`, one
at a time, owned by the caller's organisation. Each instance either lands in
the Referenced SOP Sequence (0008,1199), a duplicate of bytes already held
included, or in the Failed SOP Sequence (0008,1198) with a Failure Reason
(0008,1197) from PS3.18 Table I.2-2:

    C000  Error: Cannot understand    not Part 10 DICOM, a UID or the Patient ID missing or invalid,
                                      or a part that is not application/dicom
    A900  Data Set does not match     an image SOP class without Pixel Data; and an instance of another
                                      study than the one the path names (Table I.2-2 has no code of its
                                      own for that; Table 10.5.3-1 calls it a "Study Instance UID mismatch")
    0111  Duplicate SOP Instance      the SOP Instance UID is held with other content (PS3.7 C.4.1.1.4
                                      "Duplicate SOP Instance"; nothing is overwritten)
    0110  Processing failure          the study is held for another patient; storage failed for this part

The HTTP status follows Table 10.5.3-1: 200 when every instance was stored,
202 when some failed, 409 when none was. A body that ends early or is
malformed (SenderFault) or too large raises after every blob it stored is
reclaimed and the session rolled back: nothing of such a request is kept.

A request runs in two phases, so that concurrent requests overlap: first
every part is read, checked and its bytes stored, touching no database; then
the rows are written in the caller's transaction (on SQLite, the single
writer's gate of `hub.db`). Local blobs are made durable together between
the two (`repository.blobstore.BatchedPuts`): each part is written unsynced,
and once all are in, the files and their directories are fsynced at once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, BinaryIO, Protocol, cast

from sqlalchemy.orm import Session

from repository.blobstore import BlobStore, BlobStoreError, deferred_sync
from repository.dicomfile import InvalidDicom, read_instance_header
from repository.dicomweb.dicomjson import element
from repository.ingest import (
    InconsistentPatient,
    InstanceConflict,
    MissingPixelData,
    Prepared,
    Sender,
    prepare,
    record_all,
)
from repository.reclaim import reclaim_unreferenced

__all__ = ["FailureReason", "StoreResult", "store_instances"]

DICOM = "application/dicom"
PREAMBLE = 128
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values of PS3.18 Table I.2-2 (and PS3.7 for the duplicate)."""

    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    DATA_SET_DOES_NOT_MATCH = 0xA900
    CANNOT_UNDERSTAND = 0xC000


# What each refusal of `ingest` is called in the response, most specific first.
INGEST_REFUSALS: tuple[tuple[type[InvalidDicom], FailureReason], ...] = (
    (MissingPixelData, FailureReason.DATA_SET_DOES_NOT_MATCH),
    (InstanceConflict, FailureReason.DUPLICATE_SOP_INSTANCE),
    (InconsistentPatient, FailureReason.PROCESSING_FAILURE),
    (InvalidDicom, FailureReason.CANNOT_UNDERSTAND),
)


class SpooledPart(Protocol):
    """One part of the request body, spooled (hub.soap.mtom.BodyPart)."""

    content_type: str
    file: BinaryIO


@dataclass(frozen=True)
class Stored:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str           # XDS form, for the audit record


@dataclass(frozen=True)
class Failed:
    sop_class_uid: str
    sop_instance_uid: str
    reason: FailureReason
    message: str


@dataclass
class StoreResult:
    stored: list[Stored] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    new_blobs: list[str] = field(default_factory=list)   # what to reclaim if the request does not complete

    @property
    def status(self) -> int:
        """PS3.18 Table 10.5.3-1."""
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    def studies(self) -> list[tuple[str, list[tuple[str, str]]]]:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for s in self.stored:
            grouped.setdefault(s.study_instance_uid, []).append((s.sop_class_uid, s.sop_instance_uid))
        return list(grouped.items())

    def response(self, base_url: str, study_uid: str | None) -> dict[str, Any]:
        """The Store Instances Response Module (PS3.18 Table I.1-1) as DICOM JSON."""
        studies = {s.study_instance_uid for s in self.stored}
        target = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
        body: dict[str, Any] = {"00081190": element("UR", [f"{base_url}/studies/{target}"] if target else [])}
        if self.failed:
            body["00081198"] = {"vr": "SQ", "Value": [
                {**_reference(f.sop_class_uid, f.sop_instance_uid), "00081197": element("US", [int(f.reason)])}
                for f in self.failed]}
        if self.stored:
            body["00081199"] = {"vr": "SQ", "Value": [
                {**_reference(s.sop_class_uid, s.sop_instance_uid), "00081190": element("UR", [
                    f"{base_url}/studies/{s.study_instance_uid}/series/{s.series_instance_uid}"
                    f"/instances/{s.sop_instance_uid}"])}
                for s in self.stored]}
        return body


def _reference(sop_class_uid: str, sop_instance_uid: str) -> dict[str, Any]:
    """SOP Instance Reference Macro (PS3.3 Table 10-11); a part too broken to name its UIDs leaves them empty."""
    return {"00081150": element("UI", [sop_class_uid]), "00081155": element("UI", [sop_instance_uid])}


def _part10(file: BinaryIO) -> BinaryIO:
    """The part as a PS3.10 file: a part that opens with the File Meta Information but lacks the 128-byte
    preamble and "DICM" prefix (pydicom writes so a data set built in memory, as dicomweb-client sends it)
    gets them, so what is stored is a proper Part 10 file (PS3.10 7.1); anything else is left as it is."""
    file.seek(0)
    head = file.read(PREAMBLE + 4)
    file.seek(0)
    if head[PREAMBLE:PREAMBLE + 4] == b"DICM" or head[:2] != b"\x02\x00":   # (0002,xxxx) little endian
        return file
    fixed = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))
    fixed.write(bytes(PREAMBLE) + b"DICM")
    shutil.copyfileobj(file, fixed, 1024 * 1024)
    fixed.seek(0)
    return fixed


def _prepare_one(store: BlobStore, part: SpooledPart, sender: Sender, study_uid: str | None) -> Prepared | Failed:
    stream = _part10(part.file)
    try:
        return _prepare_stream(store, part.content_type, stream, sender, study_uid)
    finally:
        if stream is not part.file:
            stream.close()


def _prepare_stream(store: BlobStore, content_type: str, stream: BinaryIO, sender: Sender,
                    study_uid: str | None) -> Prepared | Failed:
    """The part's header checked and its bytes stored, or why not; no database."""
    media_type = (content_type or DICOM).lower()
    if media_type != DICOM:
        return Failed("", "", FailureReason.CANNOT_UNDERSTAND, f"a part of type {media_type} (only {DICOM} is stored)")
    try:
        header = read_instance_header(stream)
    except InvalidDicom as exc:
        return Failed("", "", FailureReason.CANNOT_UNDERSTAND, str(exc))
    uids = header.sop_class_uid, header.sop_instance_uid
    if study_uid is not None and header.study_instance_uid != study_uid:
        return Failed(*uids, FailureReason.DATA_SET_DOES_NOT_MATCH,
                      f"the instance belongs to study {header.study_instance_uid}, not {study_uid}")
    stream.seek(0)
    try:
        return prepare(store, stream, header, sender)
    except InvalidDicom as exc:
        return Failed(*uids, _reason(exc), str(exc))
    except (OSError, BlobStoreError) as exc:
        return Failed(*uids, FailureReason.PROCESSING_FAILURE, f"storage failed: {exc}")


def _reason(exc: InvalidDicom) -> FailureReason:
    return next(r for kind, r in INGEST_REFUSALS if isinstance(exc, kind))


def _record_rows(session: Session, store: BlobStore, outcomes: list[Prepared | Failed], result: StoreResult,
                 check_blobs: bool) -> None:
    """The rows of the prepared instances, in the caller's transaction, and every outcome noted in `result`
    in the request's order; the blob of an instance refused here is reclaimed unless something holds it."""
    session.connection()          # the transaction begins here: on SQLite, with the writers' gate held
    if check_blobs:
        # Bytes this request found stored already (and did not write) may have been reclaimed since by another
        # request's failure; under the gate no one can between this check and the commit.
        outcomes = [o if isinstance(o, Failed) or store.exists(o.sha256) else Failed(
            o.header.sop_class_uid, o.header.sop_instance_uid, FailureReason.PROCESSING_FAILURE,
            "storage failed: the stored bytes were removed meanwhile; send it again") for o in outcomes]
    recorded = iter(record_all(session, [o for o in outcomes if isinstance(o, Prepared)]))
    refused: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, Failed):
            result.failed.append(outcome)
            continue
        ingested = next(recorded)
        if isinstance(ingested, InvalidDicom):
            refused.append(outcome.sha256)
            result.failed.append(Failed(outcome.header.sop_class_uid, outcome.header.sop_instance_uid,
                                        _reason(ingested), str(ingested)))
            continue
        instance = ingested.instance
        if not ingested.duplicate:
            result.new_blobs.append(instance.sha256)
        result.stored.append(Stored(instance.sop_class_uid, instance.sop_instance_uid, instance.study_instance_uid,
                                    instance.series_instance_uid, instance.patient_id))
    reclaim_unreferenced(session, store, refused)


def store_instances(session: Session, store: BlobStore, parts: Iterable[SpooledPart], sender: Sender,
                    study_uid: str | None = None) -> StoreResult:
    """Store every part; the caller records the audit event and commits. On an error of the body itself
    (truncated, malformed, too large) nothing is kept: the session is rolled back, new blobs reclaimed.

    Two phases, so that concurrent requests overlap: every part is read,
    checked and its bytes stored (and made durable) before the first
    statement; only then are the rows written, in the caller's transaction,
    which on SQLite is the single writer's gate (`hub.db`).
    """
    result = StoreResult()
    batch = deferred_sync(store)
    target: BlobStore = batch if batch is not None else store
    put: list[str] = []
    try:
        prepared: list[Prepared | Failed] = []      # in the request's order
        for part in parts:
            prepared.append(_prepare_one(target, part, sender, study_uid))
            if isinstance(prepared[-1], Prepared):
                put.append(prepared[-1].sha256)
        if batch is not None:
            batch.sync()      # every blob durable, together, before any row naming one commits
        _record_rows(session, store, prepared, result, check_blobs=batch is not None)
    except BaseException:
        if batch is not None:
            batch.discard()
        session.rollback()
        # Only what this request wrote: bytes it found stored may belong to another request in flight.
        reclaim_unreferenced(session, store, batch.written if batch is not None else put)
        session.rollback()
        raise
    return result
