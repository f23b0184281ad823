"""An instance in a transfer syntax the caller accepts (RAD TF-3 4.69.4.1.2: TransferSyntaxUIDList).

An Imaging Document Consumer lists the transfer syntaxes it accepts, in order
of preference; the Imaging Document Source answers each instance in one of
them or reports it cannot (RAD TF-3 4.69.4.1.3). `choose_transfer_syntax`
picks the syntax, `transcode` rewrites the Part 10 file into it with pydicom:

- between Implicit VR, Explicit VR and Deflated Explicit VR Little Endian
  (PS3.5 A.1, A.2, A.5) the data set is re-encoded, pixels left as they are;
- from a compressed syntax pydicom can decode here (RLE Lossless, and JPEG,
  JPEG-LS, JPEG 2000 when their plugins are installed) into those three, by
  `Dataset.decompress` (a lossy source stays what it was: decoding adds no loss);
- into RLE Lossless with pydicom's own encoder, or another lossless syntax
  whose encoder is installed (JPEG-LS Lossless with pyjpegls, JPEG 2000
  Lossless with pylibjpeg-openjpeg), from any source it can read.

Lossy targets are never produced: they would change pixel values and so
require a new SOP Instance UID (PS3.5 8.2), where the consumer asked for the
instance it named. Big Endian (retired, PS3.5 A.3) is neither read nor written.
A data set without pixel data is only relabelled: the syntax then only names the
encoding of the data set, Explicit VR Little Endian for every compressed one.
The SOP Instance UID, in the data set and the File Meta Information, is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from repository.dicomfile import InvalidDicom, read_dataset

__all__ = ["NATIVE_SYNTAXES", "TranscodeUnavailable", "can_transcode", "choose_transfer_syntax", "transcode"]

NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian})
LOSSLESS_ENCODINGS = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# What pydicom's codecs raise for data they cannot handle (bit depth, photometric interpretation, plugin missing)
_CODEC_ERRORS = (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, TypeError)


class TranscodeUnavailable(ValueError):
    """The instance cannot be given in the wanted transfer syntax."""


def _compressed(uid: str) -> bool | None:
    """True for an encapsulated syntax, False for a native one, None when `uid` is no transfer syntax known here."""
    syntax = UID(uid)
    if not syntax.is_transfer_syntax:
        return None
    return bool(syntax.is_compressed)


def _decodable(uid: str) -> bool:
    if uid in NATIVE_SYNTAXES:
        return True
    if not _compressed(uid):
        return False   # Big Endian, or not a transfer syntax at all
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def _encodable(uid: str) -> bool:
    if uid in NATIVE_SYNTAXES:
        return True
    if uid not in LOSSLESS_ENCODINGS:
        return False
    try:
        return bool(get_encoder(uid).is_available)
    except NotImplementedError:
        return False


def can_transcode(stored: str, target: str) -> bool:
    """Whether an instance held in `stored` can be given in `target` here (same syntax: always)."""
    return stored == target or (_decodable(stored) and _encodable(target))


def choose_transfer_syntax(stored: str, wanted: Sequence[str]) -> str | None:
    """`stored` if wanted (or nothing is listed), else the first wanted syntax reachable from it, else None."""
    if not wanted or stored in wanted:
        return stored
    return next((target for target in wanted if can_transcode(stored, target)), None)


def _has_pixels(dataset: Dataset) -> bool:
    return any(keyword in dataset for keyword in PIXEL_KEYWORDS)


def _convert(dataset: Dataset, target: UID) -> None:
    stored = UID(dataset.file_meta.TransferSyntaxUID)
    if not _has_pixels(dataset) or stored == target:
        dataset.file_meta.TransferSyntaxUID = target
        return
    if stored.is_compressed:
        dataset.decompress(generate_instance_uid=False)   # into Explicit VR Little Endian
    if target.is_compressed:
        dataset.compress(target, generate_instance_uid=False)
    else:
        dataset.file_meta.TransferSyntaxUID = target


def transcode(source: BinaryIO, sink: BinaryIO, target: str) -> None:
    """Write the Part 10 instance read from `source` to `sink` in `target`; TranscodeUnavailable when impossible.

    The whole data set is held in memory while it is converted; nothing is
    written to `sink` before the conversion succeeded.
    """
    try:
        dataset = read_dataset(source)
    except InvalidDicom as exc:
        raise TranscodeUnavailable(f"the stored instance is not readable: {exc}") from None
    stored = UID(dataset.file_meta.TransferSyntaxUID)
    if not can_transcode(stored, target):
        raise TranscodeUnavailable(f"an instance in {_name(stored)} cannot be given in {_name(target)} here")
    try:
        _convert(dataset, UID(target))
    except _CODEC_ERRORS as exc:
        raise TranscodeUnavailable(f"{_name(stored)} to {_name(target)} failed for this instance: {exc}") from None
    pydicom.dcmwrite(sink, dataset, enforce_file_format=True)


def _name(uid: str) -> str:
    syntax = UID(uid)
    return f"{syntax.name} ({uid})" if syntax.is_transfer_syntax else uid
