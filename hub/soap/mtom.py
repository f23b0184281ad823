"""MTOM/XOP packaging, streamed (W3C XOP 1.0, SOAP 1.2 MTOM; ITI TF-2x V.3.3).

Requests: `read_multipart` reads a multipart/related body (RFC 2046 5.1.1,
RFC 2387) from a stream through a bounded buffer. The root part (the SOAP
envelope, XOP 1.0 section 4.1) is kept in memory within `max_root_bytes`;
every other part is spooled to a temporary file while its size, SHA-1 (the
XDS `hash` slot) and SHA-256 are computed, so memory stays bounded whatever
the documents weigh. Any error closes every file already spooled.

Responses: `render_mtom` describes an MTOM body whose length is known before
it is sent; attachments are opened lazily and read 1 MiB at a time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any, BinaryIO, cast
from urllib.parse import quote, unquote

from hub.errors import PayloadTooLarge, SenderFault

_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTENT_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")     # printable ASCII without < and >
_MEDIA_TYPE = re.compile(r"[\x20-\x7e]+")
_ACTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")     # fits a quoted-string: no quote, no backslash
_CID_SAFE = "@.!$&'()*+,;=:-_~"                            # RFC 2392 / RFC 3986 characters kept as is
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 1000
SEND_CHUNK = 1024 * 1024
MEMORY_SPOOL = 1024 * 1024     # small attachments of one request stay in memory, up to this much in total
_ENCODINGS = frozenset({"binary", "8bit", "7bit", "base64"})   # RFC 2045 6.1; quoted-printable is refused


@dataclass
class ContentType:
    media_type: str
    params: dict[str, str]


def parse_content_type(value: str | None) -> ContentType:
    message = Message()
    message["content-type"] = value or ""
    media = message.get_content_type().lower()
    params = {k.lower(): v for k, v in (message.get_params() or [])[1:]}
    return ContentType(media, {k: str(v) for k, v in params.items()})


@dataclass
class MimePart:
    headers: dict[str, str]
    content: bytes

    @property
    def content_id(self) -> str:
        return self.headers.get("content-id", "").strip().strip("<>")


@dataclass
class BodyPart:
    """A part of a multipart/related body, spooled to a temporary file (`iter_parts`: not hashed)."""

    content_id: str          # without angle brackets; "" when the part has none
    content_type: str        # the part's media type (lowercase), e.g. application/pdf
    size: int
    file: BinaryIO           # temporary file holding the bytes

    def open(self) -> BinaryIO:
        """The spooled bytes from the start; the caller reads them and leaves the file to `close`."""
        self.file.seek(0)
        return self.file


@dataclass
class Attachment(BodyPart):
    """A non-root MIME part of an MTOM message, spooled while its hashes are computed."""

    sha1: str                # lowercase hex of the decoded bytes
    sha256: str              # lowercase hex


@dataclass
class MultipartRequest:
    root: MimePart                                                     # the start part, in memory
    attachments: dict[str, Attachment] = field(default_factory=dict)   # by Content-ID

    def close(self) -> None:
        """Close (and so remove) every spooled file; safe to call more than once."""
        for attachment in self.attachments.values():
            attachment.file.close()

    def __enter__(self) -> MultipartRequest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _split_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    name = ""
    for line in raw.decode("latin-1").split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and name:                 # folded field (RFC 5322 2.2.3)
            headers[name] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not _HEADER_NAME.fullmatch(name):
            raise SenderFault(f"malformed MIME part header line: {line[:80]!r}")
        headers[name] = value.strip()
    return headers


def _transfer_encoding(headers: dict[str, str]) -> str:
    encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding not in _ENCODINGS:
        raise SenderFault(f"unsupported Content-Transfer-Encoding {encoding[:40]!r}: "
                          "expected binary, 8bit, 7bit or base64")
    return encoding


class _Base64:
    """Decodes base64 on the way (RFC 2045 6.8), whatever its line breaks, four characters at a time."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.out = write
        self.pending = b""

    def write(self, data: bytes) -> None:
        data = self.pending + data.translate(None, b" \t\r\n")
        cut = len(data) - len(data) % 4
        self.pending = data[cut:]
        if cut:
            try:
                self.out(base64.b64decode(data[:cut], validate=True))
            except binascii.Error as exc:
                raise SenderFault(f"MIME part holds invalid base64: {exc}") from None

    def close(self) -> None:
        if self.pending:
            raise SenderFault("MIME part holds invalid base64: it ends inside a group of four characters")


class _PartReader:
    """The parts of a multipart body, read from a stream through a bounded buffer (RFC 2046 5.1.1)."""

    def __init__(self, stream: IO[bytes], boundary: str, max_bytes: int, chunk_size: int) -> None:
        if not boundary or not _BOUNDARY_CHARS.fullmatch(boundary):
            raise SenderFault("multipart boundary is missing or invalid")
        self.stream, self.max_bytes, self.chunk_size = stream, max_bytes, max(chunk_size, 1)
        self.delimiter = b"\r\n--" + boundary.encode("ascii")
        self.buffer = bytearray(b"\r\n")   # so that a body opening with its first delimiter needs no special case
        self.total = 0                     # bytes read from the stream
        self.count = 0                     # parts met so far
        self.eof = False
        keep = len(self.delimiter) - 1
        while (at := self.buffer.find(self.delimiter)) < 0:    # the preamble is ignored (RFC 2046 5.1.1)
            del self.buffer[:-keep]
            if not self._fill():
                raise SenderFault("multipart body is truncated: it holds no boundary delimiter")
        del self.buffer[:at + len(self.delimiter)]

    def _fill(self) -> bool:
        """Append one read to the buffer; False at the end of the stream. More than max_bytes: 413."""
        if self.eof:
            return False
        room = self.max_bytes - self.total
        data = self.stream.read(min(self.chunk_size, room) if room > 0 else 1)
        if not data:
            self.eof = True
            return False
        self.total += len(data)
        if self.total > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        self.buffer += data
        return True

    def _find(self, needle: bytes, start: int, limit: int, what: str) -> int:
        """Where `needle` is in the buffer from `start`, reading on; refused past `limit` bytes or at the end."""
        scanned = start
        while (at := self.buffer.find(needle, scanned)) < 0:
            if len(self.buffer) - start > limit:
                raise SenderFault(f"malformed multipart body: {what} is longer than {limit} bytes")
            scanned = max(start, len(self.buffer) - len(needle) + 1)
            if not self._fill():
                raise SenderFault(f"multipart body is truncated: {what} is missing")
        if at - start > limit:
            raise SenderFault(f"malformed multipart body: {what} is longer than {limit} bytes")
        return at

    def next_headers(self) -> dict[str, str] | None:
        """After a delimiter: the next part's headers, or None at the closing delimiter (the epilogue is left)."""
        while len(self.buffer) < 2:
            if not self._fill():
                raise SenderFault("multipart body is truncated: the closing boundary is missing")
        if self.buffer[:2] == b"--":
            return None
        if self.count == MAX_PARTS:
            raise SenderFault(f"multipart body holds more than {MAX_PARTS} parts")
        eol = self._find(b"\r\n", 0, 1024, "the line ending a boundary delimiter")
        if self.buffer[:eol].strip(b" \t"):          # only transport padding may follow the boundary
            raise SenderFault("malformed multipart body: boundary not followed by CRLF")
        end = self._find(b"\r\n\r\n", eol, MAX_HEADER_BYTES, "the blank line ending a part's headers")
        while len(self.buffer) < end + 2 + len(self.delimiter) and self._fill():
            pass
        inner = self.buffer.find(self.delimiter, eol, end + 2 + len(self.delimiter))
        if 0 <= inner < end + 2:
            raise SenderFault("malformed multipart body: a part's headers do not end with a blank line")
        headers = _split_headers(bytes(self.buffer[eol + 2:end]))
        # A delimiter right after the headers' last CRLF is an empty part without the blank line (RFC 2046).
        del self.buffer[:end + 2 if inner == end + 2 else end + 4]
        self.count += 1
        return headers

    def read_body(self, write: Callable[[bytes], None], encoding: str) -> None:
        """Hand the current part's decoded content to `write`, up to and including the next delimiter."""
        decoder = _Base64(write) if encoding == "base64" else None
        emit = decoder.write if decoder is not None else write
        keep = len(self.delimiter) - 1               # a delimiter may straddle two reads
        scanned = 0
        while (at := self.buffer.find(self.delimiter, scanned)) < 0:
            scanned = max(0, len(self.buffer) - keep)
            if len(self.buffer) >= self.chunk_size + keep:
                emit(bytes(self.buffer[:-keep]))
                del self.buffer[:-keep]
                scanned = 0
            if not self._fill():
                raise SenderFault(f"multipart body is truncated: the stream ends inside part {self.count}")
        emit(bytes(self.buffer[:at]))
        del self.buffer[:at + len(self.delimiter)]
        if decoder is not None:
            decoder.close()


def _read_root(reader: _PartReader, headers: dict[str, str], limit: int) -> MimePart:
    content = bytearray()

    def write(data: bytes) -> None:
        if len(content) + len(data) > limit:
            raise PayloadTooLarge(limit)
        content.extend(data)

    reader.read_body(write, _transfer_encoding(headers))
    return MimePart(headers, bytes(content))


def _spool_body(reader: _PartReader, headers: dict[str, str], spool_dir: str | os.PathLike[str] | None,
                memory: int, digests: tuple[Any, ...] = ()) -> tuple[BinaryIO, int]:
    """The current part's decoded content in a temporary file, and its size; each of `digests` (hashlib
    objects) is fed the content on the way."""
    encoding = _transfer_encoding(headers)
    where = None if spool_dir is None else os.fspath(spool_dir)
    # A small part stays in memory; a TemporaryFile is unlinked at once, so nothing is ever left on disk.
    file = (cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=memory, dir=where)) if memory > 0
            else tempfile.TemporaryFile(dir=where))
    size = 0

    def write(data: bytes) -> None:
        nonlocal size
        file.write(data)
        for digest in digests:
            digest.update(data)
        size += len(data)

    try:
        reader.read_body(write, encoding)
        file.flush()
    except BaseException:
        file.close()
        raise
    return file, size


def _spool(reader: _PartReader, headers: dict[str, str], content_id: str,
           spool_dir: str | os.PathLike[str] | None, memory: int) -> Attachment:
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    file, size = _spool_body(reader, headers, spool_dir, memory, (sha1, sha256))
    media_type = parse_content_type(headers.get("content-type")).media_type
    return Attachment(content_id, media_type, size, file, sha1=sha1.hexdigest(), sha256=sha256.hexdigest())


def read_multipart(stream: IO[bytes], boundary: str, start: str | None, *, max_bytes: int,
                   max_root_bytes: int = 16 * 1024 * 1024, spool_dir: str | os.PathLike[str] | None = None,
                   chunk_size: int = 64 * 1024) -> MultipartRequest:
    """Read an MTOM body from `stream`: the root part (Content-ID `start`, else the first) and the attachments.

    At most `max_bytes` are read (PayloadTooLarge beyond); on any error every spooled file is closed.
    """
    wanted = (start or "").strip().strip("<>") or None
    reader = _PartReader(stream, boundary, max_bytes, chunk_size)
    root: MimePart | None = None
    attachments: dict[str, Attachment] = {}
    memory = MEMORY_SPOOL
    try:
        while (headers := reader.next_headers()) is not None:
            content_id = headers.get("content-id", "").strip().strip("<>")
            if content_id and (content_id in attachments or (root is not None and root.content_id == content_id)):
                raise SenderFault(f"two MIME parts have the Content-ID <{content_id}>")
            if root is None and (wanted is None or content_id == wanted):
                root = _read_root(reader, headers, max_root_bytes)
            elif not content_id:
                raise SenderFault(f"MIME part {reader.count} has no Content-ID (XOP 1.0 requires one)")
            else:
                attachment = attachments[content_id] = _spool(reader, headers, content_id, spool_dir, memory)
                if attachment.size <= memory:            # it stayed in memory
                    memory -= attachment.size
        if root is None:
            if reader.count:
                raise SenderFault(f"multipart start part <{wanted}> is not in the body")
            raise SenderFault("multipart body holds no parts")
    except BaseException:
        for attachment in attachments.values():
            attachment.file.close()
        raise
    return MultipartRequest(root, attachments)


def iter_parts(stream: IO[bytes], boundary: str, *, max_bytes: int,
               spool_dir: str | os.PathLike[str] | None = None,
               chunk_size: int = 64 * 1024) -> Iterator[BodyPart]:
    """Each part of any multipart/related body (RFC 2387), in order, spooled one at a time (DICOMweb STOW-RS).

    Unlike `read_multipart` no part is a root and a Content-ID is optional
    (`BodyPart.content_id` is then ""). A part is spooled to a temporary
    file (in memory up to MEMORY_SPOOL), handed to the consumer, and closed
    when the consumer asks for the next one, so at most one part is held
    whatever the body weighs. It is not hashed: the consumer hashes what it
    keeps. A truncated or malformed body raises SenderFault, more than
    `max_bytes` PayloadTooLarge, both only once the parts before the fault
    have been handed out.
    """
    reader = _PartReader(stream, boundary, max_bytes, chunk_size)
    while (headers := reader.next_headers()) is not None:
        content_id = headers.get("content-id", "").strip().strip("<>")
        file, size = _spool_body(reader, headers, spool_dir, MEMORY_SPOOL)
        part = BodyPart(content_id, parse_content_type(headers.get("content-type")).media_type, size, file)
        try:
            yield part
        finally:
            part.file.close()
    if not reader.count:
        raise SenderFault("multipart body holds no parts")


def parse_multipart(body: bytes, boundary: str) -> list[MimePart]:
    """Every part of a multipart/related body held in memory, in order; a truncated body is refused."""
    reader = _PartReader(io.BytesIO(body), boundary, len(body), 64 * 1024)
    parts: list[MimePart] = []
    while (headers := reader.next_headers()) is not None:
        content = bytearray()
        reader.read_body(content.extend, _transfer_encoding(headers))
        parts.append(MimePart(headers, bytes(content)))
    if not parts:
        raise SenderFault("multipart body holds no parts")
    return parts


def root_part(parts: list[MimePart], start: str | None) -> MimePart:
    if start:
        wanted = start.strip().strip("<>")
        for part in parts:
            if part.content_id == wanted:
                return part
        raise SenderFault(f"multipart start part <{wanted}> is not in the body")
    return parts[0]


def xop_include_href(content_id: str) -> str:
    """The xop:Include href naming a MIME part: cid: and the percent-encoded Content-ID (RFC 2392)."""
    return "cid:" + quote(content_id, safe=_CID_SAFE)


def content_id_from_href(href: str) -> str:
    """The Content-ID an xop:Include href names (XOP 1.0 section 3.2, RFC 2392)."""
    href = href.strip()
    if href[:4].lower() != "cid:" or len(href) == 4:
        raise SenderFault(f"xop:Include href {href[:80]!r} is not a cid: URL (XOP 1.0, RFC 2392)")
    return unquote(href[4:])


# -- responses ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutgoingPart:
    content_id: str                  # without angle brackets
    content_type: str
    size: int                        # exact byte length of what open() yields
    open: Callable[[], BinaryIO]     # called lazily when the part is streamed; the stream is closed after


def _send_part(part: OutgoingPart) -> Iterator[bytes]:
    """The part's bytes in SEND_CHUNK pieces; OSError when the stream holds other than `size` bytes."""
    with part.open() as stream:
        left = part.size
        while left > 0:
            data = stream.read(min(SEND_CHUNK, left))
            if not data:
                raise OSError(f"MTOM part <{part.content_id}> ended after {part.size - left} "
                              f"of its {part.size} bytes")
            left -= len(data)
            yield data
        if left < 0 or stream.read(1):
            raise OSError(f"MTOM part <{part.content_id}> holds more than its {part.size} bytes")


@dataclass(frozen=True)
class MtomBody:
    content_type: str
    content_length: int
    head: bytes = field(repr=False)                                 # root part headers and envelope
    parts: tuple[tuple[bytes, OutgoingPart], ...] = field(repr=False)
    tail: bytes = field(repr=False)

    def chunks(self) -> Iterator[bytes]:
        """The body piece by piece: never a whole attachment in memory."""
        yield self.head
        for head, part in self.parts:
            yield head
            yield from _send_part(part)
        yield self.tail


def _part_head(boundary: str, content_type: str, content_id: str) -> bytes:
    return (f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{content_id}>\r\n\r\n").encode("ascii")


def render_mtom(envelope: bytes, action: str, parts: Sequence[OutgoingPart]) -> MtomBody:
    """An MTOM/XOP message (SOAP 1.2 MTOM, ITI TF-2x V.3.3): the envelope, then each part as binary."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"   # 128 random bits: no document holds it by chance
    start = f"root.message@{uuid.uuid4().hex}"
    if not _ACTION.fullmatch(action):
        raise ValueError(f"cannot put action {action[:80]!r} in an MTOM Content-Type")
    head = _part_head(boundary, 'application/xop+xml; charset=UTF-8; type="application/soap+xml"', start)[2:]
    pieces: list[tuple[bytes, OutgoingPart]] = []
    seen = {start}
    for part in parts:       # header injection or an ambiguous reference would corrupt the message
        if part.content_id in seen or not _CONTENT_ID.fullmatch(part.content_id) \
                or not _MEDIA_TYPE.fullmatch(part.content_type):
            raise ValueError(f"cannot send an MTOM part with Content-ID {part.content_id[:80]!r} "
                             f"and Content-Type {part.content_type[:80]!r}")
        seen.add(part.content_id)
        pieces.append((_part_head(boundary, part.content_type, part.content_id), part))
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    length = len(head) + len(envelope) + sum(len(piece) + part.size for piece, part in pieces) + len(tail)
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    f'start="<{start}>"; start-info="application/soap+xml"; action="{action}"')
    return MtomBody(content_type, length, head + envelope, tuple(pieces), tail)


def render_multipart(envelope: bytes, action: str) -> tuple[bytes, str]:
    """An MTOM response holding only the envelope (no attachments): body and Content-Type."""
    body = render_mtom(envelope, action, [])
    return b"".join(body.chunks()), body.content_type
