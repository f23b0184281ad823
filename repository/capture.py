"""Non-DICOM captures (cameras, scopes, point-of-care devices) wrapped into DICOM Part 10 and ingested.

    content                     SOP class                                        transfer syntax
    JPEG/PNG, `device` named    VL Photographic Image (1.2.840.10008.5.1.4.1.1.77.1.4), modality XC
    JPEG/PNG, no device         Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7), modality OT
      JPEG baseline 8-bit         encapsulated as is, no recompression            JPEG Baseline (1.2.840.10008.1.2.4.50)
      other JPEG (progressive)    decoded by Pillow, native pixels                 Explicit VR Little Endian
      PNG                         decoded by Pillow to RGB or MONOCHROME2 (8/16)   Explicit VR Little Endian
    PDF                         Encapsulated PDF (1.2.840.10008.5.1.4.1.1.104.1), modality DOC
    MP4 (H.264 video track)     Video Photographic Image (1.2.840.10008.5.1.4.1.1.77.1.4.1), modality XC
                                  the whole MP4 file as one fragment: MPEG-4 AVC/H.264 High Profile / Level 4.1
                                  (1.2.840.10008.1.2.4.102) or Level 4.2 For 2D Video (.104)

The device rule: VL Photographic is the IOD of images a visible-light camera
acquired (PS3.3 A.33.4); when the sender names no device the hub cannot
claim that, so the image is a Secondary Capture, "converted from a non-DICOM
format" (PS3.3 A.8.1). MP4: PS3.5 8.2.7 and 8.2.8 (2024 editions) allow the
MPEG-4 (MP4, ISO/IEC 14496-12/14) container as well as MPEG-TS for the H.264
bit stream, so an MP4 whose video track is H.264 High Profile (or Main, or
Constrained Baseline, which High decoders decode) at Level 4.2 or below and
at most 1920x1080 is kept byte for byte; any other MP4 (HEVC, High 10, 4K,
fragmented) is refused with the reason, never recompressed.

Metadata: `patient_id` (required), `patient_name`, `birth_date` (YYYYMMDD or
YYYY-MM-DD), `accession`, `body_part`, `device`, `department` go into
PatientID, PatientName, PatientBirthDate, AccessionNumber, BodyPartExamined,
ManufacturerModelName (and StationName when it fits its 16 characters), and
InstitutionalDepartmentName. The XDS patient id takes the sending
organisation's OID as assigning authority (DESIGN.md, Patient identity).

Study grouping, decided from `dicom_instances` (nothing kept in memory):
- with an accession: the sending organisation's study with that accession
  number, whatever made it (a modality's exam too); refused when that study
  belongs to another patient;
- without one: the same patient's capture study (only capture SOP classes,
  no accession) of the same day (the hub's local date) from the same
  organisation;
- else a new study. Within a study, captures of the same SOP class, device
  (Series Description), body part and department share a series.
Two captures racing for the same new study may each open one; the grouping
is a convenience, not an identity.
"""

from __future__ import annotations

import io
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    MPEG4HP41,
    MPEG4HP422D,
    UID,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
    VLPhotographicImageStorage,
    generate_uid,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from repository.blobstore import BlobStore
from repository.capture_media import (
    CaptureError,
    ContentMismatch,
    MediaKind,
    UnsupportedMedia,
    identify,
    jpeg_frame,
    mp4_video,
)
from repository.ingest import Ingested, Sender, ingest
from repository.tables import DicomInstance

__all__ = ["CAPTURE_SOP_CLASSES", "CaptureError", "CaptureMetadata", "Captured", "ContentMismatch",
           "UnsupportedMedia", "capture", "parse_metadata"]

CAPTURE_SOP_CLASSES = (VLPhotographicImageStorage, SecondaryCaptureImageStorage, EncapsulatedPDFStorage,
                       VideoPhotographicImageStorage)
FIELDS = ("patient_id", "patient_name", "birth_date", "accession", "body_part", "device", "department")
MAX_PNG_PIXELS = 100_000_000            # decoded PNGs beyond this are refused (decompression bombs)
MAX_FRAGMENT = 0xFFFFFFFE               # one item of encapsulated data (PS3.5 A.4: 32-bit even length)
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")   # control characters, and "\" (the value delimiter, PS3.5 6.4)
_CODE_STRING = re.compile(r"[A-Z0-9_ ]{1,16}")   # CS (PS3.5 6.2)


@dataclass(frozen=True)
class CaptureMetadata:
    patient_id: str
    patient_name: str = ""
    birth_date: str = ""       # DA, YYYYMMDD
    accession: str = ""
    body_part: str = ""        # CS, upper case
    device: str = ""
    department: str = ""


@dataclass(frozen=True)
class Captured:
    ingested: Ingested
    kind: MediaKind
    transfer_syntax_uid: str

    @property
    def instance(self) -> DicomInstance:
        return self.ingested.instance


def _text(fields: Mapping[str, str], name: str, limit: int) -> str:
    value = (fields.get(name) or "").strip()
    if len(value) > limit:
        raise CaptureError(f"{name} is longer than {limit} characters")
    if _FORBIDDEN.search(value):
        raise CaptureError(f"{name} holds a control character or a backslash")
    return value


def parse_birth_date(value: str, today: date | None = None) -> str:
    """YYYYMMDD or ISO YYYY-MM-DD, a real past date, as DICOM DA; CaptureError otherwise."""
    if not value:
        return ""
    for layout in ("%Y%m%d", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, layout).date()
        except ValueError:
            continue
        if len(value) not in (8, 10) or parsed > (today or date.today()) or parsed.year < 1850:
            break
        return parsed.strftime("%Y%m%d")
    raise CaptureError(f"birth_date {value!r} is not a date of birth (YYYYMMDD or YYYY-MM-DD)")


def parse_metadata(fields: Mapping[str, str], today: date | None = None) -> CaptureMetadata:
    """The capture's metadata, validated against the VRs it goes into (PS3.5 6.2); CaptureError otherwise."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise CaptureError(f"unknown field(s) {', '.join(unknown)}; known: file, {', '.join(FIELDS)}")
    patient_id = _text(fields, "patient_id", 64)                   # LO
    if not patient_id:
        raise CaptureError("patient_id is required")
    body_part = _text(fields, "body_part", 16).upper()             # CS
    if body_part and not _CODE_STRING.fullmatch(body_part):
        raise CaptureError(f"body_part {body_part!r} is not a DICOM code string (A-Z, 0-9, _ and space, "
                           "e.g. SKIN, CHEST)")
    return CaptureMetadata(
        patient_id=patient_id,
        patient_name=_text(fields, "patient_name", 64),            # PN, one component group
        birth_date=parse_birth_date(_text(fields, "birth_date", 10), today),
        accession=_text(fields, "accession", 16),                  # SH
        body_part=body_part,
        device=_text(fields, "device", 64),                        # LO
        department=_text(fields, "department", 64),                # LO
    )


# -- where the capture goes: study and series --------------------------------------------------------------------

@dataclass
class _Place:
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    series_uid: str = ""
    series_number: int = 1
    instance_number: int = 1
    study_extra: dict[str, str] = field(default_factory=dict)


def xds_patient_id(metadata: CaptureMetadata, sender: Sender) -> str:
    return f"{metadata.patient_id}^^^&{sender.organisation_oid}&ISO"


def _study(session: Session, metadata: CaptureMetadata, sender: Sender, now: datetime) -> _Place:
    patient = xds_patient_id(metadata, sender)
    query = select(DicomInstance).where(DicomInstance.submitter_org_id == sender.organisation_id)
    if metadata.accession:
        query = query.where(DicomInstance.accession_number == metadata.accession)
    else:
        query = query.where(DicomInstance.patient_id == patient, DicomInstance.accession_number == "",
                            DicomInstance.study_date == now.strftime("%Y%m%d"),
                            DicomInstance.sop_class_uid.in_([str(uid) for uid in CAPTURE_SOP_CLASSES]))
    held = session.scalars(query.order_by(DicomInstance.stored_at.desc()).limit(1)).first()
    if held is None:
        return _Place(generate_uid(), now.strftime("%Y%m%d"), now.strftime("%H%M%S"), metadata.accession)
    if held.patient_id != patient:
        raise CaptureError(f"accession {metadata.accession} belongs to a study of another patient")
    return _Place(held.study_instance_uid, held.study_date, held.study_time, held.accession_number,
                  study_extra={"StudyID": held.study_id, "StudyDescription": held.study_description,
                               "ReferringPhysicianName": held.referring_physician_name})


def _series(session: Session, place: _Place, sop_class: str, description: str, metadata: CaptureMetadata) -> None:
    in_study = DicomInstance.study_instance_uid == place.study_uid
    series = session.execute(
        select(DicomInstance.series_instance_uid, DicomInstance.series_number,
               func.max(DicomInstance.instance_number))
        .where(in_study, DicomInstance.sop_class_uid == sop_class,
               DicomInstance.series_description == description,
               DicomInstance.body_part_examined == metadata.body_part,
               DicomInstance.department == metadata.department)
        .group_by(DicomInstance.series_instance_uid, DicomInstance.series_number).limit(1)).first()
    if series is not None:
        place.series_uid, place.series_number, place.instance_number = series[0], series[1] or 1, (series[2] or 0) + 1
        return
    taken = session.scalar(select(func.max(DicomInstance.series_number)).where(in_study)) or 0
    place.series_uid, place.series_number, place.instance_number = generate_uid(), taken + 1, 1


# -- the DICOM header ------------------------------------------------------------------------------------------

_DESCRIPTIONS = {VLPhotographicImageStorage: "Photographs", SecondaryCaptureImageStorage: "Captured images",
                 EncapsulatedPDFStorage: "Documents", VideoPhotographicImageStorage: "Videos"}
_MODALITIES = {VLPhotographicImageStorage: "XC", SecondaryCaptureImageStorage: "OT",
               EncapsulatedPDFStorage: "DOC", VideoPhotographicImageStorage: "XC"}


def _header(sop_class: UID, syntax: UID, metadata: CaptureMetadata, place: _Place, now: datetime) -> Dataset:
    """Patient, General Study, General Series, General Equipment, SOP Common (PS3.3 C.7, C.12.1)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = syntax
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 192"          # UTF-8 (PS3.3 C.12.1.1.2)
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyDate, ds.StudyTime = place.study_date, place.study_time
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AccessionNumber = place.accession
    ds.Modality = _MODALITIES[sop_class]
    ds.Manufacturer = ""
    ds.InstitutionalDepartmentName = metadata.department or None
    ds.ReferringPhysicianName = place.study_extra.get("ReferringPhysicianName", "")
    ds.StudyDescription = place.study_extra.get("StudyDescription") or None
    ds.SeriesDescription = metadata.device or _DESCRIPTIONS[sop_class]
    ds.ManufacturerModelName = metadata.device or None
    ds.StationName = metadata.device if metadata.device and len(metadata.device) <= 16 else None
    ds.PatientName = metadata.patient_name
    ds.PatientID = metadata.patient_id
    ds.PatientBirthDate = metadata.birth_date
    ds.PatientSex = ""
    ds.BodyPartExamined = metadata.body_part or None
    ds.StudyInstanceUID, ds.SeriesInstanceUID = place.study_uid, place.series_uid
    ds.StudyID = place.study_extra.get("StudyID", "")
    ds.SeriesNumber, ds.InstanceNumber = place.series_number, place.instance_number
    if sop_class in (SecondaryCaptureImageStorage, EncapsulatedPDFStorage):
        ds.ConversionType = "WSD"                    # SC Equipment (C.8.6.1): workstation
    for keyword in [e.keyword for e in ds if e.value is None]:
        delattr(ds, keyword)
    return ds


def _image(ds: Dataset, rows: int, columns: int, samples: int, photometric: str, bits: int, lossy: str | None) -> None:
    """General Image, Image Pixel (C.7.6.3), VL Image (C.8.12.1) / SC Image (C.8.6.2)."""
    photographic = ds.SOPClassUID != SecondaryCaptureImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if photographic else ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.LossyImageCompression = "01" if lossy else "00"
    if lossy:
        ds.LossyImageCompressionMethod = lossy
    if photographic:
        ds.AcquisitionContextSequence = []           # type 2 (C.8.4.9)


# -- writing Part 10 with a streamed payload ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Payload:
    tag: int                  # Pixel Data (7FE0,0010) or Encapsulated Document (0042,0011)
    source: BinaryIO
    size: int
    encapsulated: bool        # pixel data as fragments (PS3.5 A.4), else one OB value


def _element_header(tag: int, length: int) -> bytes:
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"OB", 0, length)


def _item(length: int) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, length)


def _write(head: Dataset, payload: _Payload | None, tail: Dataset | None, sink: BinaryIO) -> None:
    """Explicit VR Little Endian data set (the encoding of every syntax used here), payload copied in chunks."""
    dcmwrite(sink, head, enforce_file_format=True)
    if payload is not None:
        padded = payload.size + payload.size % 2
        if payload.encapsulated:
            sink.write(_element_header(payload.tag, 0xFFFFFFFF) + _item(0) + _item(padded))
        else:
            sink.write(_element_header(payload.tag, padded))
        payload.source.seek(0)
        copied = _copy(payload.source, sink)
        if copied != payload.size:
            raise ContentMismatch("the file changed while it was read")
        if payload.size % 2:
            sink.write(b"\x00")
        if payload.encapsulated:
            sink.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))    # Sequence Delimitation Item
    if tail is not None:
        dcmwrite(sink, tail, implicit_vr=False, little_endian=True)


def _copy(source: BinaryIO, sink: BinaryIO) -> int:
    copied = 0
    while chunk := source.read(1024 * 1024):
        sink.write(chunk)
        copied += len(chunk)
    return copied


def _size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


# -- one builder per kind ------------------------------------------------------------------------------------------

def _still_class(metadata: CaptureMetadata) -> UID:
    return VLPhotographicImageStorage if metadata.device else SecondaryCaptureImageStorage


def _native_image(ds: Dataset, picture: object, sink: BinaryIO, lossy: str | None) -> None:
    from PIL import Image

    assert isinstance(picture, Image.Image)
    if picture.width * picture.height > MAX_PNG_PIXELS or picture.width > 65535 or picture.height > 65535:
        raise UnsupportedMedia(f"a {picture.width}x{picture.height} image is larger than the hub decodes")
    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(picture).astype("<u2")
        samples, photometric, bits = 1, "MONOCHROME2", 16
    elif picture.mode in ("1", "L", "LA"):
        pixels = np.asarray(picture.convert("L"))
        samples, photometric, bits = 1, "MONOCHROME2", 8
    else:                                            # RGB, RGBA, P, PA, CMYK, YCbCr...: alpha dropped
        pixels = np.asarray(picture.convert("RGB"))
        samples, photometric, bits = 3, "RGB", 8
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _image(ds, picture.height, picture.width, samples, photometric, bits, lossy)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    dcmwrite(sink, ds, enforce_file_format=True)


def _decoded(stream: BinaryIO, kind: MediaKind) -> object:
    from PIL import Image, UnidentifiedImageError

    stream.seek(0)
    try:
        picture = Image.open(stream, formats=[kind.name])
        if picture.width * picture.height > MAX_PNG_PIXELS:
            raise UnsupportedMedia(f"a {picture.width}x{picture.height} image is larger than the hub decodes")
        picture.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ContentMismatch(f"the {kind.label} image cannot be decoded: {exc}") from exc
    return picture


def _jpeg(stream: BinaryIO, ds: Dataset, sink: BinaryIO) -> None:
    frame = jpeg_frame(stream)
    if frame.rows == 0 or frame.columns == 0:
        raise UnsupportedMedia("a JPEG whose height is given after the scan (DNL) is not captured")
    if frame.process == "baseline" and frame.components in (1, 3):
        # PS3.5 8.2.1: one component MONOCHROME2; three: YBR_FULL_422 when chroma is subsampled, YBR_FULL when
        # not, RGB when the Adobe marker says the components are not transformed.
        photometric = "MONOCHROME2" if frame.components == 1 else (
            "RGB" if frame.adobe_transform == 0 else "YBR_FULL_422" if frame.subsampled else "YBR_FULL")
        _image(ds, frame.rows, frame.columns, frame.components, photometric, 8, "ISO_10918_1")
        size = _size(stream)
        _write(ds, _Payload(0x7FE00010, stream, size, encapsulated=True), None, sink)
        return
    if frame.precision != 8 or frame.components not in (1, 3):
        raise UnsupportedMedia(f"a {frame.precision}-bit {frame.process} JPEG with {frame.components} components "
                               "is not captured (8-bit grayscale or colour only)")
    _native_image(ds, _decoded(stream, MediaKind.JPEG), sink, "ISO_10918_1")   # progressive: decoded, not re-coded


def _pdf(stream: BinaryIO, ds: Dataset, sink: BinaryIO, title: str) -> None:
    """Encapsulated Document module (PS3.3 C.24.2)."""
    size = _size(stream)
    ds.ConceptNameCodeSequence = []
    ds.DocumentTitle = title[:1024]
    ds.BurnedInAnnotation = "YES"       # a PDF may name the patient anywhere in its pages
    ds.AcquisitionDateTime = ""
    tail = Dataset()
    tail.MIMETypeOfEncapsulatedDocument = "application/pdf"
    tail.EncapsulatedDocumentLength = size
    _write(ds, _Payload(0x00420011, stream, size, encapsulated=False), tail, sink)


def video_syntax(profile: int | None, constraints: int, level: int | None, width: int, height: int,
                 codec: str) -> UID:
    """The MPEG-4 AVC/H.264 transfer syntax an MP4's video track can be stored under unchanged (PS3.5 8.2.7-8)."""
    if codec not in ("avc1", "avc3"):
        raise UnsupportedMedia(f"the MP4 video is coded as {codec!r}; only H.264 (avc1, avc3) is captured")
    # High decoders decode Main and Constrained Baseline (constraint_set1_flag, 0x40) streams too (H.264 A.2).
    if not (profile in (77, 100) or (profile == 66 and constraints & 0x40)):
        raise UnsupportedMedia(f"H.264 profile {profile} is not decodable as High Profile; re-encode as "
                               "H.264 High Profile")
    if width > 1920 or height > 1080:
        raise UnsupportedMedia(f"a {width}x{height} H.264 video exceeds 1920x1080 (PS3.5 8.2.7, 8.2.8)")
    if level is not None and level <= 41:
        return MPEG4HP41
    if level == 42:
        return MPEG4HP422D
    raise UnsupportedMedia(f"H.264 level {level / 10 if level else '?'} is above 4.2 (PS3.5 8.2.8)")


def _mp4(stream: BinaryIO, ds: Dataset, sink: BinaryIO) -> None:
    """Video Photographic Image: Cine (C.7.6.5), Multi-frame (C.7.6.6), the MP4 file as the bit stream."""
    size = _size(stream)
    if size > MAX_FRAGMENT:
        raise UnsupportedMedia("an MP4 file over 4 GiB does not fit one fragment")
    video = mp4_video(stream, size)
    syntax = video_syntax(video.profile, video.constraints, video.level, video.width, video.height, video.codec)
    if video.frames < 1 or not video.width or not video.height:
        raise ContentMismatch("the MP4 video track has no frames")
    ds.file_meta.TransferSyntaxUID = syntax
    _image(ds, video.height, video.width, 3, "YBR_PARTIAL_420", 8, "ISO_14496_10")
    ds.NumberOfFrames = video.frames
    ds.FrameIncrementPointer = Tag("FrameTime")
    ds.FrameTime = f"{video.frame_time_ms:.4f}"[:16]
    _write(ds, _Payload(0x7FE00010, stream, size, encapsulated=True), None, sink)


def _build(kind: MediaKind, stream: BinaryIO, metadata: CaptureMetadata, place: _Place, now: datetime,
           title: str, sink: BinaryIO) -> UID:
    sop_class = {MediaKind.JPEG: _still_class(metadata), MediaKind.PNG: _still_class(metadata),
                 MediaKind.PDF: EncapsulatedPDFStorage, MediaKind.MP4: VideoPhotographicImageStorage}[kind]
    syntax = JPEGBaseline8Bit if kind is MediaKind.JPEG else ExplicitVRLittleEndian
    ds = _header(sop_class, syntax, metadata, place, now)
    if kind is MediaKind.JPEG:
        _jpeg(stream, ds, sink)
    elif kind is MediaKind.PNG:
        _native_image(ds, _decoded(stream, kind), sink, None)
    elif kind is MediaKind.PDF:
        _pdf(stream, ds, sink, title)
    else:
        _mp4(stream, ds, sink)
    return UID(ds.file_meta.TransferSyntaxUID)


def capture_class(kind: MediaKind, metadata: CaptureMetadata) -> UID:
    return {MediaKind.PDF: EncapsulatedPDFStorage, MediaKind.MP4: VideoPhotographicImageStorage}.get(
        kind, _still_class(metadata))


def capture(session: Session, store: BlobStore, stream: BinaryIO, metadata: CaptureMetadata, sender: Sender, *,
            media_type: str | None = None, filename: str | None = None, spool_dir: Path | None = None,
            now: datetime | None = None, title: str | None = None) -> Captured:
    """Wrap one non-DICOM file (seekable stream) into DICOM and ingest it; the caller commits.

    `title` (a PDF's Document Title) defaults to the file name without its extension.

    CaptureError (UnsupportedMedia 415, ContentMismatch and bad metadata 400) or InvalidDicom when it cannot be
    taken; nothing is kept then.
    """
    now = now or datetime.now().astimezone()
    kind = identify(stream, media_type, filename)
    place = _study(session, metadata, sender, now)
    sop_class = capture_class(kind, metadata)
    _series(session, place, str(sop_class), metadata.device or _DESCRIPTIONS[sop_class], metadata)
    if spool_dir is not None:
        spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir) as part10:
        syntax = _build(kind, stream, metadata, place, now, title or Path(filename or "").stem or kind.label,
                        part10)
        part10.seek(0)
        ingested = ingest(session, store, part10, sender)
    return Captured(ingested, kind, str(syntax))

