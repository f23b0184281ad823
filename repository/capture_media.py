"""What a non-DICOM capture is: its type by magic bytes, and what its bitstream says about itself.

A capture's declared type (the upload's Content-Type, else the file name's
extension) must agree with its content:

    type   signature                          (where)
    JPEG   FF D8 FF                           ISO/IEC 10918-1 B.2.1 (SOI, then a marker)
    PNG    89 50 4E 47 0D 0A 1A 0A            ISO/IEC 15948 5.2 (PNG signature)
    PDF    %PDF-                              ISO 32000-1 7.5.2 (file header)
    MP4    a first box of type `ftyp`         ISO/IEC 14496-12 4.3 (File Type Box)

`jpeg_frame` reads a JPEG's frame header (SOFn) and Adobe APP14 transform
without decoding it; `mp4_video` walks the ISO BMFF boxes to the video
track's sample description (`avc1`/`avc3` with `avcC`: profile and level),
its size, frame count and timescale. Neither reads more than the headers
(an MP4's `mdat` is skipped by seeking), so any size costs the same memory.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import BinaryIO


class CaptureError(Exception):
    """A capture that cannot be taken; `status` is the HTTP status it answers with (400 or 415)."""

    status = 400


class UnsupportedMedia(CaptureError):
    """Not a type the hub captures, or a variant of it that cannot be stored as the standard requires."""

    status = 415


class ContentMismatch(CaptureError):
    """The content is not what its declared type says (magic bytes)."""


class MediaKind(enum.Enum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    PDF = "application/pdf"
    MP4 = "video/mp4"

    @property
    def label(self) -> str:
        return self.name


SIGNATURES = {
    MediaKind.JPEG: b"\xff\xd8\xff",
    MediaKind.PNG: b"\x89PNG\r\n\x1a\n",
    MediaKind.PDF: b"%PDF-",
}
MEDIA_TYPES = {
    "image/jpeg": MediaKind.JPEG, "image/jpg": MediaKind.JPEG, "image/pjpeg": MediaKind.JPEG,
    "image/png": MediaKind.PNG, "application/pdf": MediaKind.PDF, "video/mp4": MediaKind.MP4,
}
EXTENSIONS = {
    ".jpg": MediaKind.JPEG, ".jpeg": MediaKind.JPEG, ".jpe": MediaKind.JPEG, ".jfif": MediaKind.JPEG,
    ".png": MediaKind.PNG, ".pdf": MediaKind.PDF, ".mp4": MediaKind.MP4, ".m4v": MediaKind.MP4,
}
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
DICOM_PREFIX_AT = 128   # PS3.10 7.1: 128-byte preamble, then "DICM"


def _head(stream: BinaryIO, n: int) -> bytes:
    position = stream.tell()
    head = stream.read(n)
    stream.seek(position)
    return head


def is_dicom(head: bytes) -> bool:
    return head[DICOM_PREFIX_AT:DICOM_PREFIX_AT + 4] == b"DICM"


def sniff(head: bytes) -> MediaKind | None:
    """The capturable type these first bytes begin, if any."""
    for kind, signature in SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if head[4:8] == b"ftyp":
        return MediaKind.MP4
    return None


def declared_kind(media_type: str | None, filename: str | None) -> MediaKind | None:
    """The type a capture claims: its media type unless that is generic, else its file name's extension.

    None when it claims nothing; UnsupportedMedia when it claims a type the hub does not capture.
    """
    media = (media_type or "").split(";")[0].strip().lower()
    if media not in UNTYPED:
        kind = MEDIA_TYPES.get(media)
        if kind is None:
            raise UnsupportedMedia(f"{media} is not a type the hub captures (JPEG, PNG, PDF or MP4)")
        return kind
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix:
        kind = EXTENSIONS.get(suffix)
        if kind is None:
            raise UnsupportedMedia(f"{suffix} files are not a type the hub captures (JPEG, PNG, PDF or MP4)")
        return kind
    return None


def identify(stream: BinaryIO, media_type: str | None, filename: str | None) -> MediaKind:
    """The capture's type, checked against its magic bytes (the stream must be seekable; it is not moved)."""
    head = _head(stream, 132)
    if is_dicom(head):
        raise UnsupportedMedia("the file is DICOM already: send it with STOW-RS or `xdshub import`, not as a "
                               "capture")
    found = sniff(head)
    claimed = declared_kind(media_type, filename)
    if claimed is None:
        if found is None:
            raise UnsupportedMedia("the file is none of JPEG, PNG, PDF or MP4 (by its first bytes), and no type "
                                   "was declared")
        return found
    if found is not claimed:
        what = f"its content is {found.label}" if found else "its content does not begin with that type's signature"
        raise ContentMismatch(f"the file is declared {claimed.label} ({claimed.value}) but {what}")
    return claimed


# -- JPEG (ISO/IEC 10918-1 Annex B) ---------------------------------------------------------------------------

_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless", 0xC5: "differential",
        0xC6: "differential", 0xC7: "differential", 0xC9: "arithmetic", 0xCA: "arithmetic", 0xCB: "arithmetic",
        0xCD: "arithmetic", 0xCE: "arithmetic", 0xCF: "arithmetic"}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})   # TEM, RSTn: no length (B.1.1.3)
MAX_JPEG_HEADER_BYTES = 4 * 1024 * 1024               # markers read before the frame header, at most


@dataclass(frozen=True)
class JpegFrame:
    process: str                 # "baseline" (SOF0), "extended", "progressive", ...
    precision: int               # bits per sample (P)
    rows: int                    # Y (number of lines)
    columns: int                 # X (samples per line)
    components: int              # Nf
    subsampled: bool             # a chroma component is sampled less than the first (luma) one
    adobe_transform: int | None  # APP14 "Adobe" transform flag: 0 = RGB (not YCbCr), 1 = YCbCr


def jpeg_frame(stream: BinaryIO) -> JpegFrame:
    """The frame header of a JPEG; ContentMismatch when it has none before the scan."""
    start = stream.tell()
    if stream.read(2) != b"\xff\xd8":
        raise ContentMismatch("not a JPEG: no SOI marker")
    transform: int | None = None
    while stream.tell() - start < MAX_JPEG_HEADER_BYTES:
        byte = stream.read(1)
        if not byte:
            break
        if byte != b"\xff":
            raise ContentMismatch("not a well-formed JPEG: marker expected")
        marker = stream.read(1)
        while marker == b"\xff":     # fill bytes (B.1.1.2)
            marker = stream.read(1)
        if not marker:
            break
        code = marker[0]
        if code in _STANDALONE:
            continue
        raw = stream.read(2)
        if len(raw) < 2:
            break
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            raise ContentMismatch("not a well-formed JPEG: bad segment length")
        if code in _SOF:
            body = stream.read(length - 2)
            if len(body) < 6:
                break
            precision, rows, columns, count = struct.unpack(">BHHB", body[:6])
            factors = [body[6 + 3 * i + 1] for i in range(count) if len(body) >= 6 + 3 * i + 3]
            luma = factors[0] if factors else 0x11
            subsampled = any(f != luma for f in factors[1:])
            stream.seek(start)
            return JpegFrame(_SOF[code], precision, rows, columns, count, subsampled, transform)
        if code == 0xDA:             # SOS before any SOF
            break
        body = stream.read(length - 2)
        if code == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
            transform = body[11]
    raise ContentMismatch("not a well-formed JPEG: no frame header (SOFn) before the image data")


# -- MP4 (ISO/IEC 14496-12 ISO base media file format, 14496-14 MP4, 14496-15 AVC file format) ---------------

MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V "})


@dataclass(frozen=True)
class Mp4Video:
    codec: str                 # sample entry type: "avc1", "avc3", "hvc1", ...
    profile: int | None        # AVCProfileIndication (H.264 profile_idc)
    constraints: int           # profile_compatibility (constraint_set flags)
    level: int | None          # AVCLevelIndication (H.264 level_idc, e.g. 41 = 4.1)
    width: int
    height: int
    frames: int                # samples in the video track
    timescale: int
    duration: int              # in timescale units

    @property
    def frame_time_ms(self) -> float:
        """Mean time per frame in milliseconds (Frame Time, PS3.3 C.7.6.5)."""
        return 1000.0 * self.duration / self.timescale / self.frames if self.frames and self.timescale else 0.0


def _boxes(stream: BinaryIO, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes between the stream's position and `end` (4.2)."""
    found = []
    while stream.tell() + 8 <= end:
        at = stream.tell()
        size, kind = struct.unpack(">I4s", stream.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", stream.read(8))[0]
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ContentMismatch(f"not a well-formed MP4: box {kind!r} overruns its container")
        found.append((kind, at + header, at + size))
        stream.seek(at + size)
    return found


def _read(stream: BinaryIO, at: int, n: int) -> bytes:
    stream.seek(at)
    data = stream.read(n)
    if len(data) < n:
        raise ContentMismatch("not a well-formed MP4: a box is cut short")
    return data


def _video_track(stream: BinaryIO, start: int, end: int) -> Mp4Video | None:
    stream.seek(start)
    boxes = {kind: (s, e) for kind, s, e in _boxes(stream, end)}
    if b"mdia" not in boxes:
        return None
    stream.seek(boxes[b"mdia"][0])
    mdia = {kind: (s, e) for kind, s, e in _boxes(stream, boxes[b"mdia"][1])}
    if b"hdlr" not in mdia or _read(stream, mdia[b"hdlr"][0] + 8, 4) != b"vide":
        return None
    mdhd = mdia.get(b"mdhd")
    if mdhd is None or b"minf" not in mdia:
        raise ContentMismatch("not a well-formed MP4: the video track has no media header")
    version = _read(stream, mdhd[0], 1)[0]
    if version == 1:
        timescale, duration = struct.unpack(">IQ", _read(stream, mdhd[0] + 20, 12))
    else:
        timescale, duration = struct.unpack(">II", _read(stream, mdhd[0] + 12, 8))
    stbl = _find(stream, mdia[b"minf"], b"stbl")
    stream.seek(stbl[0])
    table = {kind: (s, e) for kind, s, e in _boxes(stream, stbl[1])}
    if b"stsd" not in table or b"stts" not in table:
        raise ContentMismatch("not a well-formed MP4: the video track has no sample description or timing")
    entries = struct.unpack(">I", _read(stream, table[b"stts"][0] + 4, 4))[0]
    frames = sum(struct.unpack(">I", _read(stream, table[b"stts"][0] + 8 + 8 * i, 4))[0]
                 for i in range(min(entries, 100_000)))
    stream.seek(table[b"stsd"][0] + 8)      # full box header, entry_count
    sample_entries = _boxes(stream, table[b"stsd"][1])
    if not sample_entries:
        raise ContentMismatch("not a well-formed MP4: empty sample description")
    codec, entry_start, entry_end = sample_entries[0]
    width, height = struct.unpack(">HH", _read(stream, entry_start + 24, 4))   # VisualSampleEntry (12.1.3)
    profile = level = None
    constraints = 0
    stream.seek(entry_start + 78)
    for kind, s, _e in _boxes(stream, entry_end):
        if kind == b"avcC":    # AVCDecoderConfigurationRecord (14496-15 5.3.3.1)
            _version, profile, constraints, level = _read(stream, s, 4)
    return Mp4Video(codec.decode("latin-1"), profile, constraints, level, width, height, frames, timescale,
                    duration)


def _find(stream: BinaryIO, parent: tuple[int, int], name: bytes) -> tuple[int, int]:
    stream.seek(parent[0])
    for kind, s, e in _boxes(stream, parent[1]):
        if kind == name:
            return s, e
    raise ContentMismatch(f"not a well-formed MP4: no {name.decode('latin-1')} box")


def mp4_video(stream: BinaryIO, size: int) -> Mp4Video:
    """The video track of an MP4 file; ContentMismatch / UnsupportedMedia when there is none usable."""
    start = stream.tell()
    try:
        top = _boxes(stream, start + size)
        if not top or top[0][0] != b"ftyp":
            raise ContentMismatch("not an MP4: the first box is not ftyp")
        ftyp = _read(stream, top[0][1], top[0][2] - top[0][1])
        brands = {ftyp[0:4]} | {ftyp[i:i + 4] for i in range(8, len(ftyp) - 3, 4)}
        if not brands & MP4_BRANDS:
            raise UnsupportedMedia(f"an ISO media file of brand {ftyp[0:4].decode('latin-1')!r} is not MP4 "
                                   "(ISO/IEC 14496-14)")
        kinds = [kind for kind, _s, _e in top]
        if b"moov" not in kinds:
            raise ContentMismatch("not a well-formed MP4: no movie box (moov)")
        if b"moof" in kinds:
            raise UnsupportedMedia("fragmented MP4 is not captured: its frame count is not known up front")
        moov = next((s, e) for kind, s, e in top if kind == b"moov")
        stream.seek(moov[0])
        for kind, s, e in _boxes(stream, moov[1]):
            if kind == b"trak":
                video = _video_track(stream, s, e)
                if video is not None:
                    return video
        raise UnsupportedMedia("the MP4 file has no video track")
    except struct.error as exc:
        raise ContentMismatch("not a well-formed MP4: a box is cut short") from exc
    finally:
        stream.seek(start)
