"""Hardened parsing and rendering of SOAP 1.2 envelopes with WS-Addressing.

What is refused, and why (each a SOAP Sender fault, nothing read or stored):
- a document type declaration: SOAP 1.2 part 1, 5 ("MUST NOT contain a DTD"),
  which also shuts out external entities and entity-expansion bombs; the
  parser never resolves entities nor reaches the network in any case;
- not XML, or a body over the configured size (checked before parsing);
- a SOAP 1.1 envelope: env:VersionMismatch (SOAP 1.2 part 1, 5.4.7);
- missing wsa:Action or wsa:MessageID: WS-Addressing 1.0 SOAP binding 6.4.1
  (ITI TF-2x V.3.1 requires both);
- a header block with mustUnderstand that the hub does not process:
  env:MustUnderstand (SOAP 1.2 part 1, 5.2.3).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from hub.errors import MustUnderstandFault, SenderFault, VersionMismatchFault

if TYPE_CHECKING:
    from hub.soap.mtom import Attachment

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

UNDERSTOOD_HEADER_NAMESPACES = frozenset({NS_WSA})


def hardened_parser() -> etree.XMLParser:
    """An lxml parser that never resolves entities, loads DTDs or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


@dataclass
class SoapRequest:
    """A parsed SOAP 1.2 request: addressing headers and the Body's first child."""

    action: str
    message_id: str
    body: etree._Element
    reply_to: str | None = None
    to: str | None = None
    mtom: bool = False
    attachments: dict[str, Attachment] = field(default_factory=dict)
    close: Callable[[], None] = field(default=lambda: None)   # frees spooled attachments


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML bytes; refuse DTDs and anything that is not well-formed."""
    if not data.strip():
        raise SenderFault("empty request body: a SOAP 1.2 envelope is required")
    try:
        root = etree.fromstring(data, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise SenderFault(f"request is not well-formed XML: {exc.msg}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise SenderFault("document type declarations are not allowed in SOAP messages "
                          "(SOAP 1.2 part 1, 5)")
    return root


def _header_text(header: etree._Element | None, name: str) -> str | None:
    if header is None:
        return None
    element = header.find(f"{{{NS_WSA}}}{name}")
    if element is None:
        return None
    if name == "ReplyTo":
        address = element.find(f"{{{NS_WSA}}}Address")
        return (address.text or "").strip() if address is not None else None
    return (element.text or "").strip()


def _check_must_understand(header: etree._Element | None) -> None:
    if header is None:
        return
    for block in header:
        if not isinstance(block.tag, str):
            continue
        flag = block.get(f"{{{NS_SOAP12}}}mustUnderstand", "false").strip().lower()
        if flag in ("true", "1") and etree.QName(block).namespace not in UNDERSTOOD_HEADER_NAMESPACES:
            raise MustUnderstandFault(f"header block {etree.QName(block).text} is not understood")


def parse_envelope(data: bytes, content_type_action: str | None = None) -> SoapRequest:
    """Parse a SOAP 1.2 envelope into a SoapRequest (the body stays an lxml element)."""
    root = parse_xml(data)
    qname = etree.QName(root)
    if qname.localname == "Envelope" and qname.namespace == NS_SOAP11:
        raise VersionMismatchFault("SOAP 1.1 is not supported: XDS.b requires SOAP 1.2")
    if qname.localname != "Envelope" or qname.namespace != NS_SOAP12:
        raise SenderFault(f"root element is {qname.text}, not a SOAP 1.2 Envelope")
    header = root.find(f"{{{NS_SOAP12}}}Header")
    body = root.find(f"{{{NS_SOAP12}}}Body")
    if body is None:
        raise SenderFault("SOAP envelope has no Body")
    _check_must_understand(header)
    action = _header_text(header, "Action")
    message_id = _header_text(header, "MessageID")
    if not action:
        raise SenderFault("WS-Addressing Action header is required (ITI TF-2x V.3.1)",
                          subcode="wsa:MessageAddressingHeaderRequired")
    if not message_id:
        raise SenderFault("WS-Addressing MessageID header is required (ITI TF-2x V.3.1)",
                          subcode="wsa:MessageAddressingHeaderRequired")
    if content_type_action and content_type_action != action:
        raise SenderFault(f"Content-Type action {content_type_action!r} differs from wsa:Action {action!r}",
                          subcode="wsa:InvalidAddressingHeader")
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SenderFault(f"SOAP Body must hold exactly one element, found {len(children)}")
    return SoapRequest(
        action=action,
        message_id=message_id,
        body=children[0],
        reply_to=_header_text(header, "ReplyTo"),
        to=_header_text(header, "To"),
    )


def render_envelope(action: str, body: etree._Element | None, relates_to: str | None = None,
                    to: str | None = None, message_id: str | None = None) -> etree._Element:
    """A SOAP 1.2 envelope with wsa:Action, wsa:MessageID and, when given, wsa:RelatesTo / wsa:To.

    Requests (the hub as a client) and responses (wsa:RelatesTo the request's
    MessageID) are both built here.
    """
    envelope = etree.Element(f"{{{NS_SOAP12}}}Envelope", nsmap={"s": NS_SOAP12, "a": NS_WSA})
    header = etree.SubElement(envelope, f"{{{NS_SOAP12}}}Header")
    action_el = etree.SubElement(header, f"{{{NS_WSA}}}Action")
    action_el.set(f"{{{NS_SOAP12}}}mustUnderstand", "true")
    action_el.text = action
    etree.SubElement(header, f"{{{NS_WSA}}}MessageID").text = message_id or f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, f"{{{NS_WSA}}}RelatesTo").text = relates_to
    if to:
        etree.SubElement(header, f"{{{NS_WSA}}}To").text = to
    body_el = etree.SubElement(envelope, f"{{{NS_SOAP12}}}Body")
    if body is not None:
        body_el.append(body)
    return envelope


def serialize(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")
