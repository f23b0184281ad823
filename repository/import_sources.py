"""What `xdshub import` reads: files, folders, ZIP archives and DICOMDIRs, as a flat list of items.

    argument                 items
    a file                   the file
    a folder                 its files, recursively; a DICOMDIR in it brings the files it references, and
                             the folder's other files follow (each file once)
    a ZIP archive            its members, read from the archive (never extracted to a path: each member is
                             copied into a spooled temporary file, in memory up to 8 MiB)
    a DICOMDIR               the files its directory records reference (Referenced File ID, PS3.3 F.3.2.2)

Hostile input is refused, never followed:
- a ZIP member whose name is absolute, has a drive letter or a `..` component
  is refused on its own (path traversal; nothing is written to disk anyway);
- a ZIP whose members declare more than `ZipLimits.max_total` bytes in all,
  more than `max_members` members, or a member over 1 MiB compressed more
  than `max_ratio` to 1 is refused whole (zip bomb). The declared sizes bind:
  zipfile never inflates a member beyond its declared size and checks its CRC;
- a Referenced File ID whose components are not DICOM file ID components
  (PS3.10 8.2: up to 8 of A-Z, 0-9, _) or that resolves outside the
  DICOMDIR's folder (symbolic links included) is refused.
"""

from __future__ import annotations

import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError

SPOOL_IN_MEMORY = 8 * 1024 * 1024
RATIO_CHECKED_ABOVE = 1024 * 1024        # small members may compress well (zeros): their ratio is not judged
_FILE_ID = re.compile(r"[A-Za-z0-9_]{1,8}")
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ZipLimits:
    max_total: int = 16 * 1024 ** 3      # bytes all members declare, unpacked
    max_ratio: int = 100                 # unpacked / packed, for a member over 1 MiB
    max_members: int = 100_000


@dataclass(frozen=True)
class Item:
    """One file to import; `open()` gives a seekable stream of it."""

    label: str                           # its path, or "archive.zip!member/name"
    name: str                            # its file name (the extension names a capture's type)
    open: Callable[[], AbstractContextManager[BinaryIO]] = field(compare=False)


@dataclass(frozen=True)
class Rejected:
    """Something not imported, found while listing: `refused` (hostile or broken) or skipped."""

    label: str
    reason: str
    refused: bool = True


def _open_file(path: Path) -> AbstractContextManager[BinaryIO]:
    return path.open("rb")


def _file(path: Path) -> Item:
    return Item(str(path), path.name, partial(_open_file, path))


def is_dicomdir(path: Path) -> bool:
    return path.name.upper() == "DICOMDIR"


def _is_zip(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(4) in ZIP_SIGNATURES
    except OSError:
        return False


# -- ZIP ------------------------------------------------------------------------------------------------------------

def unsafe_member_name(name: str) -> bool:
    """Absolute, drive-lettered, or climbing out with `..` (ZIP APPNOTE 4.4.17: relative, forward slashes)."""
    parts = re.split(r"[\\/]", name)
    return (name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or "\x00" in name
            or any(part == ".." for part in parts))


@contextmanager
def _open_member(archive: Path, info: zipfile.ZipInfo) -> Iterator[BinaryIO]:
    with zipfile.ZipFile(archive) as opened, opened.open(info) as member, \
            tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spooled:
        while chunk := member.read(1024 * 1024):      # bounded by the declared size, CRC checked at the end
            spooled.write(chunk)
        spooled.seek(0)
        yield spooled  # type: ignore[misc]


def _bomb(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> str | None:
    if len(infos) > limits.max_members:
        return f"{len(infos)} members, more than {limits.max_members}"
    total = sum(info.file_size for info in infos)
    if total > limits.max_total:
        return f"it unpacks to {total} bytes, more than the limit of {limits.max_total}"
    for info in infos:
        if info.file_size > RATIO_CHECKED_ABOVE and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            return f"member {info.filename} is compressed {ratio}:1, more than {limits.max_ratio}:1"
    return None


def zip_items(path: Path, limits: ZipLimits) -> Iterator[Item | Rejected]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Rejected(str(path), f"not a readable ZIP archive: {exc}")
        return
    bomb = _bomb(infos, limits)
    if bomb is not None:
        yield Rejected(str(path), f"ZIP archive refused as a possible zip bomb: {bomb}")
        return
    for info in infos:
        label = f"{path}!{info.filename}"
        if unsafe_member_name(info.filename):
            yield Rejected(label, "unsafe member name (absolute path or '..'): path traversal refused")
        elif info.flag_bits & 0x1:
            yield Rejected(label, "encrypted ZIP member")
        elif is_dicomdir(Path(info.filename.replace("\\", "/"))):
            yield Rejected(label, "DICOMDIR index (the archive's files are imported on their own)", refused=False)
        else:
            yield Item(label, info.filename.replace("\\", "/").rsplit("/", 1)[-1], partial(_open_member, path, info))


# -- DICOMDIR ------------------------------------------------------------------------------------------------------

def _component(folder: Path, name: str) -> Path:
    """`folder/name`, or the entry whose name differs only in case (media written upper case, copied lower)."""
    exact = folder / name
    if exact.exists() or not folder.is_dir():
        return exact
    for entry in folder.iterdir():
        if entry.name.upper() == name.upper():
            return entry
    return exact


def dicomdir_items(path: Path) -> tuple[list[Item | Rejected], set[Path]]:
    """The items a DICOMDIR references, and their resolved paths.

    pydicom's value warnings are silenced here: every Referenced File ID is checked below, and a hostile one
    is refused with its reason rather than warned about.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _dicomdir_items(path)


def _dicomdir_items(path: Path) -> tuple[list[Item | Rejected], set[Path]]:
    label = str(path)
    try:
        index = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as exc:
        return [Rejected(label, f"not a readable DICOMDIR: {exc}")], set()
    root = path.parent.resolve()
    found: list[Item | Rejected] = []
    seen: set[Path] = set()
    for record in index.get("DirectoryRecordSequence", []):
        reference = record.get("ReferencedFileID")
        if not reference:
            continue
        parts = [reference] if isinstance(reference, str) else [str(part) for part in reference]
        shown = "\\".join(parts)
        if not all(_FILE_ID.fullmatch(part) for part in parts):
            found.append(Rejected(f"{label}: {shown}", "Referenced File ID is not a DICOM file ID (PS3.10 8.2)"))
            continue
        target = root
        for part in parts:
            target = _component(target, part)
        target = target.resolve()
        if not target.is_relative_to(root):
            found.append(Rejected(f"{label}: {shown}", "Referenced File ID leads outside the DICOMDIR's folder"))
        elif not target.is_file():
            found.append(Rejected(f"{label}: {shown}", "the file the DICOMDIR references is missing"))
        elif target not in seen:
            seen.add(target)
            found.append(_file(target))
    return found, seen


# -- all together --------------------------------------------------------------------------------------------------

def _folder(folder: Path, limits: ZipLimits) -> Iterator[Item | Rejected]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    covered: set[Path] = set()
    listed: list[Item | Rejected] = []
    for index in (p for p in files if is_dicomdir(p)):
        items, seen = dicomdir_items(index)
        listed.extend(items)
        covered |= seen | {index.resolve()}
    yield from listed
    for path in files:
        if path.resolve() not in covered:
            yield from _one(path, limits)


def _one(path: Path, limits: ZipLimits) -> Iterator[Item | Rejected]:
    if is_dicomdir(path):
        yield from dicomdir_items(path)[0]
    elif _is_zip(path):
        yield from zip_items(path, limits)
    else:
        yield _file(path)


def collect(paths: tuple[Path, ...] | list[Path], limits: ZipLimits | None = None) -> list[Item | Rejected]:
    """Everything the paths hold, in order; an item reached twice (a DICOMDIR and its folder) listed once."""
    limits = limits or ZipLimits()
    found: list[Item | Rejected] = []
    labels: set[str] = set()
    for path in paths:
        for entry in (_folder(path, limits) if path.is_dir() else _one(path, limits)):
            if isinstance(entry, Item) and entry.label in labels:
                continue
            labels.add(entry.label)
            found.append(entry)
    return found
