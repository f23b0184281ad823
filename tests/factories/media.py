"""Small non-DICOM files for capture tests: JPEG and PNG made by Pillow, a PDF and an MP4 written by hand.

`png_bytes` and `jpeg_bytes` draw the same known picture (`picture_pixels`).
`mp4_bytes` is structurally a real ISO BMFF / MP4 file (ftyp, moov with one
video track whose sample description is `avc1` + `avcC`, stts, mdat) with a
given H.264 profile, level and size; its `mdat` is filler, not a decodable
stream, which is all the hub reads (it never decodes video).
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

__all__ = ["jpeg_bytes", "mp4_bytes", "pdf_bytes", "picture_pixels", "png_bytes"]


def picture_pixels(rows: int = 12, columns: int = 16, mode: str = "RGB") -> np.ndarray:
    """Known pixel values: RGB (rows, columns, 3) uint8, or L (rows, columns) uint8, or I;16 uint16."""
    y, x = np.mgrid[0:rows, 0:columns]
    if mode == "L":
        return ((y * 16 + x * 3) % 256).astype(np.uint8)
    if mode == "I;16":
        return ((y * 4099 + x * 257) % 65536).astype(np.uint16)
    return np.stack([(x * 15) % 256, (y * 20) % 256, ((x + y) * 7) % 256], axis=-1).astype(np.uint8)


def png_bytes(rows: int = 12, columns: int = 16, mode: str = "RGB") -> bytes:
    sink = io.BytesIO()
    Image.fromarray(picture_pixels(rows, columns, mode)).save(sink, format="PNG")
    return sink.getvalue()


def jpeg_bytes(rows: int = 16, columns: int = 24, *, progressive: bool = False, grey: bool = False) -> bytes:
    sink = io.BytesIO()
    picture = Image.fromarray(picture_pixels(rows, columns, "L" if grey else "RGB"))
    picture.save(sink, format="JPEG", quality=90, progressive=progressive)
    return sink.getvalue()


def pdf_bytes(text: str = "Wound care note") -> bytes:
    """A one-page PDF 1.4 with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, body: bytes, version: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + body)


def mp4_bytes(*, width: int = 320, height: int = 240, frames: int = 50, timescale: int = 25_000,
              frame_duration: int = 1000, profile: int = 100, level: int = 41, codec: bytes = b"avc1",
              brand: bytes = b"isom", mdat_size: int = 4096) -> bytes:
    """An MP4 with one video track of `frames` samples, each `frame_duration` / `timescale` seconds long."""
    avcc = _box(b"avcC", bytes([1, profile, 0, level, 0xFF, 0xE0, 0x00]))
    visual = (b"\x00" * 6 + struct.pack(">H", 1) + b"\x00" * 16 + struct.pack(">HH", width, height)
              + struct.pack(">II", 0x00480000, 0x00480000) + b"\x00" * 4 + struct.pack(">H", 1)
              + b"\x00" * 32 + struct.pack(">Hh", 0x18, -1) + avcc)
    stsd = _full(b"stsd", struct.pack(">I", 1) + _box(codec, visual))
    stts = _full(b"stts", struct.pack(">III", 1, frames, frame_duration))
    stbl = _box(b"stbl", stsd + stts)
    minf = _box(b"minf", _full(b"vmhd", b"\x00" * 8) + stbl)
    duration = frames * frame_duration
    mdhd = _full(b"mdhd", struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = _full(b"hdlr", struct.pack(">I4s12s", 0, b"vide", b"\x00" * 12) + b"video\x00")
    mdia = _box(b"mdia", mdhd + hdlr + minf)
    tkhd = _full(b"tkhd", b"\x00" * 76 + struct.pack(">II", width << 16, height << 16))
    moov = _box(b"moov", _full(b"mvhd", b"\x00" * 96) + _box(b"trak", tkhd + mdia))
    ftyp = _box(b"ftyp", brand + struct.pack(">I", 0x200) + brand)
    mdat = _box(b"mdat", bytes(range(256)) * (mdat_size // 256))
    return ftyp + mdat + moov
