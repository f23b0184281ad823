"""The one place that turns exceptions into SOAP answers.

- `hub.errors.SoapFault` (and its subclasses) → a SOAP 1.2 env:Fault with the
  HTTP status of the SOAP 1.2 HTTP binding (Sender 400, Receiver 500) or of
  the security check (401 / 403 with a WWW-Authenticate challenge, RFC 6750 3).
- `hub.errors.XdsError` / `XdsErrorList` → the transaction's own response body
  (rs:RegistryResponse or query:AdhocQueryResponse) with status Failure and an
  rs:RegistryErrorList (ITI TF-3 4.2.4), HTTP 200.
- anything else (lxml, database, a bug) → env:Receiver, logged with the
  request id, no stack trace or internals on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response
from lxml import etree

from hub.errors import AuthenticationFault, AuthorizationFault, SoapFault, XdsError, XdsErrorList
from hub.soap.envelope import NS_SOAP12, NS_WSA
from hub.soap.http import soap_response

log = logging.getLogger(__name__)

FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"


def fault_element(fault: SoapFault) -> etree._Element:
    """env:Fault (SOAP 1.2 part 1, 5.4) with Code/Value, optional Subcode and Reason/Text."""
    root = etree.Element(f"{{{NS_SOAP12}}}Fault", nsmap={"s": NS_SOAP12, "a": NS_WSA})
    code = etree.SubElement(root, f"{{{NS_SOAP12}}}Code")
    etree.SubElement(code, f"{{{NS_SOAP12}}}Value").text = f"s:{fault.code}"
    if fault.subcode:
        # Subcodes are WS-Addressing fault codes (WS-Addressing SOAP binding 6.4); the
        # envelope declares that namespace with the prefix "a", which must stay in scope.
        _, _, local = fault.subcode.partition(":")
        subcode = etree.SubElement(code, f"{{{NS_SOAP12}}}Subcode")
        etree.SubElement(subcode, f"{{{NS_SOAP12}}}Value").text = f"a:{local}"
    reason = etree.SubElement(root, f"{{{NS_SOAP12}}}Reason")
    text = etree.SubElement(reason, f"{{{NS_SOAP12}}}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = fault.reason
    return root


def bearer_challenge(error: str, description: str) -> str:
    """An RFC 6750 3 challenge; quoted-strings escape backslash and quote (RFC 9110 5.6.4)."""
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ") + '"'
    return f"Bearer error={quoted(error)}, error_description={quoted(description)}"


def fault_response(fault: SoapFault, relates_to: str | None = None, mtom: bool = False) -> Response:
    headers: dict[str, str] = {}
    if isinstance(fault, AuthenticationFault | AuthorizationFault):
        headers["WWW-Authenticate"] = bearer_challenge(fault.error, fault.reason)
    return soap_response(FAULT_ACTION, fault_element(fault), relates_to, mtom, fault.http_status, headers)


def unexpected_fault(exc: BaseException, request_id: str | None) -> SoapFault:
    """A Receiver fault for an exception that is not ours; the details go to the log only."""
    log.exception("unhandled error in SOAP transaction", exc_info=exc)
    return SoapFault(f"internal error (request id {request_id or 'unknown'})", code="Receiver", http_status=500)


def errors_of(exc: XdsError | XdsErrorList) -> list[XdsError]:
    return exc.errors if isinstance(exc, XdsErrorList) else [exc]


ErrorRenderer = Callable[[list[XdsError]], etree._Element]


def registry_error_response(render: ErrorRenderer, exc: XdsError | XdsErrorList, action: str,
                            relates_to: str | None, mtom: bool) -> Response:
    """The transaction's response body carrying the IHE error codes (HTTP 200, ITI TF-3 4.2.4)."""
    return soap_response(action, render(errors_of(exc)), relates_to, mtom)
