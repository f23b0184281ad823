"""MTOM/XOP packaging (W3C XOP 1.0, SOAP MTOM; ITI TF-2x V.3.3).

This first version reads a bounded multipart/related body in memory (the
request size limit applies before), takes the root part as the envelope and
keeps the other parts by Content-ID for xop:Include references. The
repository issue replaces it with a streaming parser for large documents.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.message import Message

from hub.errors import SenderFault

_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")


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


def _split_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SenderFault(f"malformed MIME part header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def parse_multipart(body: bytes, boundary: str) -> list[MimePart]:
    """Split a multipart/related body into parts; a truncated body is refused."""
    if not _BOUNDARY_CHARS.match(boundary):
        raise SenderFault("multipart boundary is missing or invalid")
    delimiter = b"--" + boundary.encode("ascii")
    if delimiter + b"--" not in body:
        raise SenderFault("multipart body is truncated: the closing boundary is missing")
    pieces = body.split(delimiter)
    parts: list[MimePart] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        if not piece.startswith(b"\r\n"):
            raise SenderFault("malformed multipart body: boundary not followed by CRLF")
        raw_headers, sep, content = piece[2:].partition(b"\r\n\r\n")
        if not sep:
            raise SenderFault("malformed multipart body: part without header separator")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        parts.append(MimePart(_split_headers(raw_headers), content))
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


def render_multipart(envelope: bytes, action: str) -> tuple[bytes, str]:
    """An MTOM response holding only the envelope (no attachments): body and Content-Type."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"<root.message@{uuid.uuid4().hex}>"
    head = (
        f"--{boundary}\r\n"
        f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
        f"Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: {start}\r\n\r\n"
    ).encode("ascii")
    body = head + envelope + f"\r\n--{boundary}--\r\n".encode("ascii")
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    f'start="{start}"; start-info="application/soap+xml"; action="{action}"')
    return body, content_type
