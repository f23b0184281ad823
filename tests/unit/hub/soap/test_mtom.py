"""MTOM/XOP packaging: multipart parsing, truncation and root part selection."""

from __future__ import annotations

import io

import pytest

from hub.errors import PayloadTooLarge, SenderFault, VersionMismatchFault
from hub.soap.envelope import SoapRequest
from hub.soap.http import BodyLimits, read_soap_request
from hub.soap.mtom import parse_multipart, render_multipart
from tests.unit.hub.soap.test_envelope import ACTION, envelope


def mtom_body(root: bytes, boundary: str = "MIMEBoundary_abc") -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            f'type="application/soap+xml"\r\nContent-ID: <root@x>\r\n\r\n').encode() + root + (
        f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-ID: <doc1@x>\r\n\r\n"
        f"hello\r\n--{boundary}--\r\n").encode()


CT = (f'multipart/related; boundary=MIMEBoundary_abc; type="application/xop+xml"; start="<root@x>"; '
      f'start-info="application/soap+xml"; action="{ACTION}"')


LIMITS = BodyLimits(max_xml_bytes=1 << 20, max_total_bytes=1 << 22)


def read(content_type: str | None, body: bytes) -> SoapRequest:
    return read_soap_request(content_type, io.BytesIO(body), LIMITS)


def test_mtom_request_yields_envelope_and_attachments() -> None:
    request = read(CT, mtom_body(envelope()))
    try:
        assert request.mtom
        assert request.action == ACTION
        assert {cid: a.open().read() for cid, a in request.attachments.items()} == {"doc1@x": b"hello"}
    finally:
        request.close()


def test_a_plain_envelope_over_the_xml_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        read_soap_request(f'application/soap+xml; action="{ACTION}"', io.BytesIO(b" " * (2 << 20)), LIMITS)


def test_truncated_multipart_is_refused() -> None:
    body = mtom_body(envelope())
    with pytest.raises(SenderFault) as info:
        read(CT, body[: len(body) // 2])
    assert "truncated" in info.value.reason


def test_missing_start_part_is_refused() -> None:
    with pytest.raises(SenderFault) as info:
        read(CT.replace("<root@x>", "<nowhere@x>"), mtom_body(envelope()))
    assert "start part" in info.value.reason


@pytest.mark.parametrize(
    ("content_type", "fault", "status"),
    [("text/xml; charset=utf-8", VersionMismatchFault, 400), ("application/json", SenderFault, 415),
     (None, SenderFault, 415)],
)
def test_wrong_content_types(content_type: str | None, fault: type[SenderFault], status: int) -> None:
    with pytest.raises(fault) as info:
        read(content_type, envelope())
    assert info.value.http_status == status


def test_rendered_multipart_round_trips() -> None:
    body, content_type = render_multipart(envelope(), ACTION)
    request = read(content_type, body)
    assert request.action == ACTION


def test_boundary_must_be_sane() -> None:
    with pytest.raises(SenderFault):
        parse_multipart(b"--x\r\n\r\n--x--", "bad\nboundary")
