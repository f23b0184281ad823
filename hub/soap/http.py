"""SOAP over HTTP: from a request's Content-Type and body stream to a SoapRequest, and back.

A plain SOAP 1.2 body (application/soap+xml) is read whole, within
`max_xml_bytes`. An MTOM body (multipart/related, ITI TF-2x V.3) is read as a
stream: the root part (the envelope) within `max_xml_bytes`, each attachment
spooled to a temporary file while it is hashed, the whole within
`max_total_bytes`, so memory stays bounded whatever the documents weigh.
Answers carrying documents stream them from storage (`SoapReply`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flask import Response
from lxml import etree

from hub.errors import PayloadTooLarge, SenderFault, VersionMismatchFault
from hub.soap.envelope import SoapRequest, parse_envelope, render_envelope, serialize
from hub.soap.mtom import OutgoingPart, parse_content_type, read_multipart, render_mtom


@dataclass(frozen=True)
class BodyLimits:
    max_xml_bytes: int                 # a SOAP envelope (plain body or MTOM root part)
    max_total_bytes: int               # a whole MTOM body, attachments included
    spool_dir: Path | None = None      # where attachments are spooled


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read a whole stream, refusing (413) more than `limit` bytes without reading them all."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(limit)
    return data


def read_soap_request(content_type: str | None, stream: IO[bytes], limits: BodyLimits) -> SoapRequest:
    """SOAP 1.2 as application/soap+xml, or MTOM/XOP multipart/related (ITI TF-2x V.3)."""
    ctype = parse_content_type(content_type)
    if ctype.media_type == "application/soap+xml":
        return parse_envelope(read_limited(stream, limits.max_xml_bytes), ctype.params.get("action"))
    if ctype.media_type == "multipart/related":
        multipart = read_multipart(stream, ctype.params.get("boundary", ""), ctype.params.get("start"),
                                   max_bytes=limits.max_total_bytes, max_root_bytes=limits.max_xml_bytes,
                                   spool_dir=limits.spool_dir)
        try:
            root_type = parse_content_type(multipart.root.headers.get("content-type"))
            if root_type.media_type != "application/xop+xml":
                raise SenderFault(f"MTOM root part has type {root_type.media_type}, not application/xop+xml")
            action = root_type.params.get("action") or ctype.params.get("action")
            request = parse_envelope(multipart.root.content, action)
        except BaseException:
            multipart.close()
            raise
        request.mtom = True
        request.attachments = multipart.attachments
        request.close = multipart.close
        return request
    if ctype.media_type == "text/xml":
        raise VersionMismatchFault("text/xml is SOAP 1.1; XDS.b requires SOAP 1.2 (application/soap+xml)")
    raise SenderFault(f"unsupported Content-Type {ctype.media_type or '(none)'}: "
                      "expected application/soap+xml or multipart/related (MTOM)", http_status=415)


@dataclass
class SoapReply:
    """A response body with attachments, streamed as MTOM; `on_close` runs when the response ends."""

    body: etree._Element
    attachments: Sequence[OutgoingPart] = ()
    on_close: Callable[[], None] | None = field(default=None)


def soap_response(action: str, body: etree._Element | SoapReply, relates_to: str | None, mtom: bool,
                  status: int = 200, headers: dict[str, str] | None = None) -> Response:
    reply = body if isinstance(body, SoapReply) else SoapReply(body)
    envelope = serialize(render_envelope(action, reply.body, relates_to))
    if mtom or reply.attachments:
        mtom_body = render_mtom(envelope, action, list(reply.attachments))
        response = Response(mtom_body.chunks(), status=status, content_type=mtom_body.content_type,
                            direct_passthrough=True)
        response.content_length = mtom_body.content_length
    else:
        response = Response(envelope, status=status,
                            content_type=f'application/soap+xml; charset=UTF-8; action="{action}"')
    if reply.on_close is not None:
        response.call_on_close(reply.on_close)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
