"""DICOMweb on the wire: Accept header fields and multipart/related answers (PS3.18 8.7, 8.6.1.2; RFC 2387).

`parse_accept` turns an Accept field into media ranges by preference (RFC
9110 12.5.1: q=0 means "not acceptable"); the retrieve transactions pick from
them. `multipart_chunks` writes a multipart/related body part by part; each
part's content is opened only when it is reached and read 1 MiB at a time, so
an answer of a whole study never holds more than one chunk in memory.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = ["MediaRange", "Part", "multipart_chunks", "multipart_content_type", "new_boundary", "parse_accept"]

CHUNK = 1024 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z/]+")


@dataclass(frozen=True)
class MediaRange:
    media_type: str                                        # lowercase, e.g. multipart/related or */*
    params: dict[str, str] = field(default_factory=dict)   # lowercase names, values unquoted
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        """Whether this range accepts `media_type` (type/subtype, wildcards allowed in the range)."""
        kind, _, sub = self.media_type.partition("/")
        want_kind, _, want_sub = media_type.partition("/")
        return kind in ("*", want_kind) and sub in ("*", want_sub)


def _split(value: str, separator: str) -> list[str]:
    """`value` split at `separator` outside quoted strings."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [p.strip() for p in pieces if p.strip()]


def parse_accept(value: str | None) -> list[MediaRange]:
    """The media ranges of an Accept field, most preferred first; `*/*` when the field is absent or empty."""
    if not value or not value.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for item in _split(value, ","):
        head, *rest = _split(item, ";")
        media = head.strip().lower()
        if not _TOKEN.fullmatch(media) or "/" not in media:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for param in rest:
            name, _, raw = param.partition("=")
            name, raw = name.strip().lower(), raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"')
            if name == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
            else:
                params[name] = raw
        if q > 0:
            ranges.append(MediaRange(media, params, q))
    return sorted(ranges, key=lambda r: -r.q)   # sorted() is stable: equal q keep their order


@dataclass(frozen=True)
class Part:
    content_type: str
    open: Callable[[], BinaryIO] | None = None     # opened when reached, closed after
    data: bytes = b""                              # small content held already (frames, bulk data)
    location: str | None = None                    # Content-Location (PS3.18 8.6.1.2)
    size: int | None = None                        # bytes `open` gives, when known in advance


class ShortPart(OSError):
    """A part's stream gave other than the size announced in the Content-Length: the body is cut off."""


def new_boundary() -> str:
    return f"xdshub-{uuid.uuid4().hex}"


def multipart_content_type(boundary: str, part_type: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")


def _head(part: Part, boundary: str) -> bytes:
    head = f"--{boundary}\r\nContent-Type: {part.content_type}\r\n"
    if part.location:
        head += f"Content-Location: {part.location}\r\n"
    return (head + "\r\n").encode("ascii")


def multipart_length(parts: Sequence[Part], boundary: str) -> int | None:
    """The exact byte length of `multipart_chunks(parts, boundary)` when every part's size is known, else None.

    With it the answer carries a Content-Length instead of being sent chunked:
    the client knows at once how much comes, and the server copies no chunk
    framing around each write.
    """
    total = len(f"--{boundary}--\r\n")
    for part in parts:
        size = len(part.data) if part.open is None else part.size
        if size is None:
            return None
        total += len(_head(part, boundary)) + size + 2
    return total


def multipart_chunks(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The multipart/related body (RFC 2046 5.1.1) of `parts`, one part opened at a time.

    Small pieces (part headers, instances smaller than a chunk) are gathered
    into writes of about CHUNK bytes: each yielded piece is one write to the
    TLS socket, and a write per part header cost more than the copy.
    """
    pending: list[bytes] = []
    size = 0
    for part in parts:
        pending.append(_head(part, boundary))
        if part.open is None:
            pending.append(part.data)
            size += len(part.data)
        else:
            sent = 0
            with part.open() as stream:
                while chunk := stream.read(CHUNK):
                    pending.append(chunk)
                    size += len(chunk)
                    sent += len(chunk)
                    if size >= CHUNK:
                        yield b"".join(pending)
                        pending, size = [], 0
            if part.size is not None and sent != part.size:
                raise ShortPart(f"a part gave {sent} bytes where {part.size} were announced")
        pending.append(b"\r\n")
        if size >= CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(f"--{boundary}--\r\n".encode("ascii"))
    yield b"".join(pending)
