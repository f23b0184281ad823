"""SOAP over HTTP: from a request's Content-Type and bytes to a SoapRequest, and back."""

from __future__ import annotations

from flask import Response

from hub.errors import SenderFault, VersionMismatchFault
from hub.soap.envelope import SoapRequest, parse_envelope, render_envelope, serialize
from hub.soap.mtom import parse_content_type, parse_multipart, render_multipart, root_part


def read_soap_request(content_type: str | None, body: bytes) -> SoapRequest:
    """SOAP 1.2 as application/soap+xml, or MTOM/XOP multipart/related (ITI TF-2x V.3)."""
    ctype = parse_content_type(content_type)
    if ctype.media_type == "application/soap+xml":
        return parse_envelope(body, ctype.params.get("action"))
    if ctype.media_type == "multipart/related":
        parts = parse_multipart(body, ctype.params.get("boundary", ""))
        root = root_part(parts, ctype.params.get("start"))
        root_type = parse_content_type(root.headers.get("content-type"))
        if root_type.media_type != "application/xop+xml":
            raise SenderFault(f"MTOM root part has type {root_type.media_type}, not application/xop+xml")
        action = root_type.params.get("action") or ctype.params.get("action")
        request = parse_envelope(root.content, action)
        request.mtom = True
        request.attachments = {p.content_id: p.content for p in parts if p is not root}
        return request
    if ctype.media_type == "text/xml":
        raise VersionMismatchFault("text/xml is SOAP 1.1; XDS.b requires SOAP 1.2 (application/soap+xml)")
    raise SenderFault(f"unsupported Content-Type {ctype.media_type or '(none)'}: "
                      "expected application/soap+xml or multipart/related (MTOM)", http_status=415)


def soap_response(action: str, body: object, relates_to: str | None, mtom: bool,
                  status: int = 200, headers: dict[str, str] | None = None) -> Response:
    envelope = serialize(render_envelope(action, body, relates_to))  # type: ignore[arg-type]
    if mtom:
        payload, content_type = render_multipart(envelope, action)
    else:
        payload, content_type = envelope, f'application/soap+xml; charset=UTF-8; action="{action}"'
    response = Response(payload, status=status, content_type=content_type)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
