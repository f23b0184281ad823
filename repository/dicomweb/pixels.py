"""One frame of an instance's pixel data, decoded with pydicom 3 and its plugins (PS3.5 8, A.4).

Only the asked frame is decoded (`pydicom.pixels.pixel_array(ds, index=...)`):
a 500-frame instance is not decompressed whole to render one frame. pydicom
gives YBR_FULL and YBR_FULL_422 as RGB, removes 4:2:2 sub-sampling, masks
the bits above Bits Stored and sign-extends signed values.

The decoders (setup.cfg installs them), tried in turn:

    Implicit, Explicit, Deflated VR Little Endian   1.2, 1.2.1, 1.2.1.99  pydicom
    RLE Lossless                                    1.2.5                 pydicom
    JPEG Baseline (8 bit)                           1.2.4.50              Pillow, else imagecodecs
    JPEG Extended (12 bit)                          1.2.4.51              imagecodecs (Pillow: 8 bit only)
    JPEG Lossless, process 14 and its SV1           1.2.4.57, 1.2.4.70    imagecodecs
    JPEG-LS Lossless and Near-Lossless              1.2.4.80, 1.2.4.81    pyjpegls (CharLS, MIT)
    JPEG 2000 (Lossless), HTJ2K                     1.2.4.90-91, 201-203  pylibjpeg-openjpeg (MIT), Pillow

imagecodecs (BSD-3-Clause; libjpeg-turbo 3, which decodes lossless and 12-bit
JPEG) is not a pydicom plugin of its own: this module registers it as one on
import. Left out on purpose: pylibjpeg-libjpeg is GPLv3 (the hub is Apache-2.0);
GDCM (python-gdcm) aborts the whole process on a malformed JPEG or JPEG 2000
stream, and pylibjpeg-rle raises a Rust panic (a BaseException) on a malformed
RLE one, so neither is ever tried here even when installed (`UNSAFE_PLUGINS`).

A frame no decoder can read is NotAcceptable naming the transfer syntax; an
instance without pixel data (Encapsulated PDF, SR, KOS) likewise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import struct

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import (
    UID,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    RLELossless,
)

from repository.dicomweb.errors import NotAcceptable, NotFound

__all__ = ["DECODE_ERRORS", "decode_frame", "describe_transfer_syntax", "frame_count", "has_pixel_data"]

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MAX_MESSAGE = 300
UNSAFE_PLUGINS = frozenset({("gdcm", None), ("pylibjpeg", RLELossless)})   # (plugin, syntax or None: any)
PREFERENCE = ("pydicom", "pylibjpeg", "pyjpegls", "pillow", "imagecodecs")  # the order plugins are tried in
ALL_FAILED = "Unable to decode as exceptions were raised by all available plugins: "   # pydicom's preamble

# What pydicom and its plugins raise on data they cannot decode (all plugins failed, none installed, bad values)
DECODE_ERRORS = (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, TypeError, IndexError,
                 EOFError, OverflowError, struct.error)


def describe_transfer_syntax(uid: object) -> str:
    """The transfer syntax's name and UID for a message, e.g. "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)"."""
    text = str(uid or "").strip()
    if not text:
        return "an unknown transfer syntax"
    name = UID(text).name
    return text if name == text else f"{name} ({text})"


def has_pixel_data(dataset: Dataset) -> bool:
    return any(keyword in dataset for keyword in PIXEL_KEYWORDS)


def frame_count(dataset: Dataset) -> int:
    try:
        return max(int(dataset.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def _plugins(syntax: UID) -> list[str]:
    """The decoding plugins to try for `syntax`: "" (pydicom's own) for a native one, else the safe ones installed."""
    if not syntax.is_compressed:
        return [""]
    safe = [plugin for plugin in get_decoder(syntax).available_plugins
            if (plugin, None) not in UNSAFE_PLUGINS and (plugin, syntax) not in UNSAFE_PLUGINS]
    return sorted(safe, key=lambda p: PREFERENCE.index(p) if p in PREFERENCE else len(PREFERENCE))


def decode_frame(dataset: Dataset, number: int) -> np.ndarray:
    """Frame `number` (from 1): (rows, columns) or (rows, columns, samples), colour as RGB."""
    if not has_pixel_data(dataset):
        sop_class = str(dataset.get("SOPClassUID", "") or "")
        what = f"the instance ({UID(sop_class).name})" if sop_class else "the instance"
        raise NotAcceptable(f"{what} has no pixel data to render")
    count = frame_count(dataset)
    if not 1 <= number <= count:
        raise NotFound(f"the instance has {count} frame(s); there is no frame {number}")
    syntax = UID(str(getattr(dataset, "file_meta", Dataset()).get("TransferSyntaxUID", "") or ""))
    described = describe_transfer_syntax(syntax)
    try:
        plugins = _plugins(syntax)
    except (NotImplementedError, ValueError):     # no decoder for it at all (MPEG, HEVC video), or no syntax
        raise NotAcceptable(f"{described} pixel data cannot be decoded here: no decoder for it") from None
    if not plugins:
        raise NotAcceptable(f"{described} pixel data cannot be decoded here: no decoder for it is installed")
    failures = []
    for plugin in plugins:
        try:
            return pixel_array(dataset, index=number - 1, decoding_plugin=plugin)
        except DECODE_ERRORS as exc:
            failures.append(_one_line(exc).removeprefix(ALL_FAILED))
    raise NotAcceptable(f"{described} pixel data cannot be decoded here: {'; '.join(failures)}"[:2 * MAX_MESSAGE])


# -- imagecodecs as a pydicom decoding plugin (PS3.5 A.4.1: JPEG lossless and 12-bit JPEG) --------------------
# pydicom's plugin protocol: a module with `DECODER_DEPENDENCIES` and `is_available(uid)`, and the function.

IMAGECODECS_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1)
DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.1.1",) for syntax in IMAGECODECS_SYNTAXES}


def is_available(uid: str) -> bool:
    return uid in DECODER_DEPENDENCIES and importlib.util.find_spec("imagecodecs") is not None


def decode_jpeg_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One JPEG frame through libjpeg-turbo, its samples as stored (no colour transform: pydicom does that)."""
    import imagecodecs

    space = "RGB" if runner.samples_per_pixel == 3 else None     # the same in and out: no transform
    array = np.asarray(imagecodecs.jpeg8_decode(src, colorspace=space, outcolorspace=space))
    if runner.samples_per_pixel > 1:
        runner.set_option("planar_configuration", 0)      # libjpeg gives colour by pixel
    bits = array.dtype.itemsize * 8
    if bits < runner.bits_allocated:
        array = array.astype(f"<u{runner.bits_allocated // 8}")
    elif bits > runner.bits_allocated:
        runner.set_option("bits_allocated", bits)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _register_imagecodecs() -> None:
    for syntax in IMAGECODECS_SYNTAXES:
        with contextlib.suppress(ValueError):      # registered already
            get_decoder(syntax).add_plugin("imagecodecs", (__name__, "decode_jpeg_frame"))


_register_imagecodecs()
