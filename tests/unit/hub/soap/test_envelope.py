"""The hardened SOAP parser: hostile and malformed input gets a fault, nothing else happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import MustUnderstandFault, SenderFault, SoapFault, VersionMismatchFault
from hub.soap.envelope import NS_SOAP12, NS_WSA, parse_envelope, render_envelope, serialize

ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"


def envelope(body: str = "<q:AdhocQueryRequest xmlns:q='urn:x'/>", headers: str | None = None,
             ns: str = NS_SOAP12) -> bytes:
    if headers is None:
        headers = (f"<a:Action s:mustUnderstand='true'>{ACTION}</a:Action>"
                   "<a:MessageID>urn:uuid:1234</a:MessageID>")
    return (f"<s:Envelope xmlns:s='{ns}' xmlns:a='{NS_WSA}'><s:Header>{headers}</s:Header>"
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


def test_parses_action_message_id_and_body() -> None:
    request = parse_envelope(envelope(), ACTION)
    assert request.action == ACTION
    assert request.message_id == "urn:uuid:1234"
    assert request.body.tag == "{urn:x}AdhocQueryRequest"


def test_external_entity_is_refused_and_file_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = (f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file://{secret}">]>'
               ).encode() + envelope(body="<q:X xmlns:q='urn:x'>&x;</q:X>")
    with pytest.raises(SenderFault) as info:
        parse_envelope(hostile)
    assert "document type declarations are not allowed" in info.value.reason
    assert "TOP-SECRET" not in info.value.reason


def test_entity_expansion_bomb_is_refused_quickly() -> None:
    entities = '<!ENTITY a0 "xxxxxxxxxxxxxxxxxxxx">' + "".join(
        f'<!ENTITY a{i} "{"&a" + str(i - 1) + ";" * 1}' + f'{("&a" + str(i - 1) + ";") * 9}">'
        for i in range(1, 12))
    bomb = f"<?xml version='1.0'?><!DOCTYPE s:Envelope [{entities}]>".encode() + envelope(
        body="<q:X xmlns:q='urn:x'>&a11;</q:X>")
    with pytest.raises(SenderFault):
        parse_envelope(bomb)


@pytest.mark.parametrize(
    ("data", "fault", "text"),
    [
        (b"", SenderFault, "empty request body"),
        (b"this is not xml", SenderFault, "not well-formed XML"),
        (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body>", SenderFault,
         "not well-formed XML"),
        (envelope(ns="http://schemas.xmlsoap.org/soap/envelope/"), VersionMismatchFault, "SOAP 1.1"),
        (b"<root/>", SenderFault, "not a SOAP 1.2 Envelope"),
        (envelope(headers="<a:MessageID>urn:uuid:1</a:MessageID>"), SenderFault, "Action header is required"),
        (envelope(headers=f"<a:Action>{ACTION}</a:Action>"), SenderFault, "MessageID header is required"),
        (envelope(headers=f"<a:Action>{ACTION}</a:Action><a:MessageID>m</a:MessageID>"
                          "<w:Security xmlns:w='urn:wsse' s:mustUnderstand='true'/>"),
         MustUnderstandFault, "not understood"),
        (envelope(body="<a/><b/>"), SenderFault, "exactly one element"),
    ],
    ids=["empty", "not-xml", "truncated", "soap11", "not-envelope", "no-action", "no-message-id",
         "must-understand", "two-body-children"],
)
def test_malformed_envelopes_get_faults(data: bytes, fault: type[SoapFault], text: str) -> None:
    with pytest.raises(fault) as info:
        parse_envelope(data)
    assert text in info.value.reason


def test_content_type_action_must_match_wsa_action() -> None:
    with pytest.raises(SenderFault) as info:
        parse_envelope(envelope(), "urn:ihe:iti:2007:RegisterDocumentSet-b")
    assert info.value.subcode == "wsa:InvalidAddressingHeader"


def test_rendered_envelope_relates_to_request() -> None:
    from lxml import etree

    data = serialize(render_envelope("urn:resp", etree.Element("{urn:x}Answer"), "urn:uuid:1234"))
    parsed = parse_envelope(data)
    assert parsed.action == "urn:resp"
    assert b"<a:RelatesTo>urn:uuid:1234</a:RelatesTo>" in data
