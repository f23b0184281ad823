"""WADO-RS Retrieve (PS3.18 10.4; IHE RAD-107): instances, metadata, frames and bulk data.

`find_instances` resolves a study, series or instance path to the instances
the caller may see (`repository.visibility`); none is NotFound, whether the
hub does not hold them or the caller may not see them. What the retrieve
answers is planned here, before the answer streams: each part's opener only
reads the blob store (the database session is gone by then).

Transfer syntaxes (PS3.18 8.7.3.5): the Accept field's `transfer-syntax`
parameters in order of preference, `*` meaning "as stored"; without one,
Explicit VR Little Endian, the default of application/dicom. An instance is
sent as stored when that is acceptable, else transcoded by
`repository.transcode` into a temporary file when it can be; when no
acceptable syntax can be given for some instance the retrieve is 406.

Frames (PS3.18 10.4.1.1.3, 8.7.4) are answered uncompressed as
application/octet-stream (Explicit VR Little Endian pixel data), decoded
first when the instance is stored compressed and pydicom can decode it. A
frame number outside 1..NumberOfFrames names no resource: 404.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.security.identity import Caller
from repository.blobstore import BlobStore, open_seekable
from repository.dicomfile import HEADER_DEFER_SIZE, InvalidDicom, read_dataset
from repository.dicomweb.errors import BadRequest, NotAcceptable, NotFound
from repository.tables import DicomInstance
from repository.transcode import can_transcode, transcode
from repository.visibility import visible_clause

__all__ = ["STUDY_ORDER", "Held", "choose_syntax", "find_instances", "frame_numbers", "frames", "open_instance",
           "read_full", "read_header"]

AS_STORED = "*"
# A study's instances as viewers show them: series, then instance numbers (UIDs break ties).
STUDY_ORDER = (DicomInstance.series_number, DicomInstance.series_instance_uid, DicomInstance.instance_number,
               DicomInstance.sop_instance_uid)
DEFAULT_SYNTAX = str(ExplicitVRLittleEndian)     # PS3.18 8.7.3.5.2, the default of application/dicom


@dataclass(frozen=True)
class Held:
    """What a retrieve needs of one instance, copied out of the database row."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    sha256: str
    patient_id: str
    number_of_frames: int | None
    size: int = 0               # bytes of the stored blob

    @classmethod
    def of(cls, r: DicomInstance) -> Held:
        return cls(*(getattr(r, column.key) for column in HELD_COLUMNS))

    @property
    def frame_count(self) -> int:
        return self.number_of_frames or 1


# `Held`'s fields, in order, as columns of the instance table
HELD_COLUMNS = (DicomInstance.study_instance_uid, DicomInstance.series_instance_uid, DicomInstance.sop_instance_uid,
                DicomInstance.sop_class_uid, DicomInstance.transfer_syntax_uid, DicomInstance.sha256,
                DicomInstance.patient_id, DicomInstance.number_of_frames, DicomInstance.size)


def find_instances(session: Session, caller: Caller, study_uid: str, series_uid: str | None = None,
                   sop_instance_uid: str | None = None) -> list[Held]:
    """The instances of the study (series, instance) the caller may see, in series and instance order."""
    conditions = [visible_clause(caller), DicomInstance.study_instance_uid == study_uid]
    if series_uid is not None:
        conditions.append(DicomInstance.series_instance_uid == series_uid)
    if sop_instance_uid is not None:
        conditions.append(DicomInstance.sop_instance_uid == sop_instance_uid)
    # The columns a retrieve needs, not whole rows: a study of hundreds of instances is read on every request.
    rows = session.execute(select(*HELD_COLUMNS).where(*conditions).order_by(*STUDY_ORDER)).all()
    if not rows:
        what = (f"instance {sop_instance_uid}" if sop_instance_uid else
                f"series {series_uid}" if series_uid else f"study {study_uid}")
        raise NotFound(f"no {what} here (or not one this organisation may see)")
    return [Held(*row) for row in rows]


def choose_syntax(stored: str, wanted: Sequence[str]) -> str | None:
    """The transfer syntax to send an instance held in `stored` in, from the wanted ones in order; None: none."""
    for syntax in wanted or (DEFAULT_SYNTAX,):
        if syntax == AS_STORED or syntax == stored:
            return stored
        if can_transcode(stored, syntax):
            return syntax
    return None


def open_instance(store: BlobStore, held: Held, target: str, spool_dir: Path) -> Callable[[], BinaryIO]:
    """An opener of the instance's bytes in `target`: the blob itself, or a transcoded temporary file."""
    if target == held.transfer_syntax_uid:
        return lambda: store.open(held.sha256)

    def transcoded() -> BinaryIO:
        spool_dir.mkdir(parents=True, exist_ok=True)
        sink = tempfile.TemporaryFile(dir=spool_dir, prefix="wado-")
        try:
            with open_seekable(store, held.sha256) as source:
                transcode(source, sink, target)
            sink.seek(0)
            return sink   # type: ignore[return-value]
        except BaseException:
            sink.close()
            raise
    return transcoded


def read_header(store: BlobStore, held: Held) -> Dataset:
    """The instance's data set with large values (pixel data) left unread."""
    with open_seekable(store, held.sha256) as stream:
        try:
            return read_dataset(stream, defer_size=HEADER_DEFER_SIZE)
        except InvalidDicom as exc:
            raise NotFound(f"instance {held.sop_instance_uid} cannot be read: {exc}") from None


def read_full(store: BlobStore, held: Held) -> Dataset:
    """The whole data set, pixel data included (frames, bulk data, rendering)."""
    with open_seekable(store, held.sha256) as stream:
        try:
            dataset = read_dataset(stream)
        except InvalidDicom as exc:
            raise NotFound(f"instance {held.sop_instance_uid} cannot be read: {exc}") from None
    return dataset


def frame_numbers(text: str, count: int) -> list[int]:
    """The frame list of a path ("1,3,5"): BadRequest when malformed, NotFound beyond the instance's frames."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise BadRequest(f"frame list {text[:80]!r}: frame numbers are whole numbers from 1")
        numbers.append(int(item))
    beyond = [n for n in numbers if n > count]
    if beyond:
        raise NotFound(f"the instance has {count} frame(s); there is no frame {beyond[0]}")
    return numbers


def frames(dataset: Dataset, numbers: Sequence[int]) -> list[bytes]:
    """The uncompressed bytes of the asked frames (little endian, as the pixel data module describes them)."""
    if "PixelData" not in dataset:
        raise NotFound("the instance has no Pixel Data (7FE0,0010), hence no frames")
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples, bits = int(dataset.get("SamplesPerPixel", 1)), int(dataset.BitsAllocated)
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if not syntax.is_compressed:
        data = bytes(dataset.PixelData)
        if bits == 1:
            raise NotAcceptable("frames of 1-bit pixel data are not given by this hub")
        size = rows * columns * samples * bits // 8
        return [data[(n - 1) * size:n * size] for n in numbers]
    try:
        array = dataset.pixel_array
    except (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, TypeError) as exc:
        raise NotAcceptable(f"the instance is stored as {syntax.name} and cannot be decoded here to give "
                            f"uncompressed frames: {exc}") from None
    if count == 1:
        array = array[None, ...]
    return [array[n - 1].astype(array.dtype.newbyteorder("<"), copy=False).tobytes() for n in numbers]
