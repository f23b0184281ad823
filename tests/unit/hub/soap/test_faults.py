"""SOAP faults the hub sends are valid SOAP 1.2 and carry the right HTTP status."""

from __future__ import annotations

import pytest
from flask import Flask

from hub.errors import AuthenticationFault, AuthorizationFault, MustUnderstandFault, SenderFault, SoapFault
from hub.soap.envelope import parse_xml
from hub.soap.faults import fault_response
from tests.schema_validation import assert_valid


@pytest.mark.parametrize(
    ("fault", "status", "challenge"),
    [
        (SenderFault("bad", subcode="wsa:ActionNotSupported"), 400, None),
        (MustUnderstandFault("header x"), 400, None),
        (SoapFault("internal error", code="Receiver", http_status=500), 500, None),
        (AuthenticationFault("token expired"), 401, 'Bearer error="invalid_token"'),
        (AuthorizationFault("scope xds:query required"), 403, 'Bearer error="insufficient_scope"'),
    ],
)
def test_fault_response_is_schema_valid(fault: SoapFault, status: int, challenge: str | None) -> None:
    with Flask(__name__).app_context():
        response = fault_response(fault, "urn:uuid:req")
    assert response.status_code == status
    assert response.content_type.startswith("application/soap+xml")
    if challenge:
        assert response.headers["WWW-Authenticate"].startswith(challenge)
    envelope = parse_xml(response.get_data())
    assert_valid(envelope)
    text = envelope.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Text")
    assert text == fault.reason


def test_bearer_challenge_escapes_quoted_strings() -> None:
    from hub.soap.faults import bearer_challenge

    header = bearer_challenge("invalid_token", 'token "x" \\ broken\r\nInjected: yes')
    assert header == ('Bearer error="invalid_token", '
                      'error_description="token \\"x\\" \\\\ broken  Injected: yes"')
