"""A SOAP endpoint: read, authenticate, dispatch by wsa:Action, answer.

Each actor's blueprint declares its operations in a table (action → scope,
handler, error renderer) and calls `handle_soap(operations)`; the order of
checks is the same everywhere:

1. a caller with no client certificate is refused before the body is read;
2. the body is read within the size limits (413 fault beyond), MTOM
   attachments spooled to temporary files that are removed when the answer
   is made;
3. the envelope is parsed by the hardened parser and the action looked up
   (unknown: wsa:ActionNotSupported, WS-Addressing SOAP binding 6.4.4);
4. certificate, token and scope are verified (401 / 403 faults); where
   large bodies are admitted, certificate and token are verified before the
   body is read and only the scope after;
5. the handler runs in one database transaction, committed only on success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Response, g, request
from lxml import etree
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from hub import get_settings
from hub.audit.message import Outcome
from hub.audit.web import EventBuilder, record_failure, record_refusal, record_transaction
from hub.db import get_session
from hub.errors import AuthenticationFault, PayloadTooLarge, SenderFault, SoapFault, XdsError, XdsErrorList
from hub.ops import observe_transaction
from hub.security.identity import Caller
from hub.security.protect import authenticate, require_scope
from hub.security.tls import peer_certificate_der
from hub.soap.envelope import SoapRequest
from hub.soap.faults import ErrorRenderer, fault_response, registry_error_response, unexpected_fault
from hub.soap.http import BodyLimits, SoapReply, read_soap_request, soap_response

Handler = Callable[[Caller, Session, SoapRequest], "etree._Element | SoapReply"]


@dataclass(frozen=True)
class SoapOperation:
    transaction: str          # e.g. "ITI-42", for logs and metrics
    action: str
    response_action: str
    scope: str
    handle: Handler
    render_errors: ErrorRenderer
    audit: EventBuilder | None = None   # the transaction's audit event (hub.audit.events)


def _limits(max_total_bytes: int | None) -> BodyLimits:
    settings = get_settings()
    return BodyLimits(max_xml_bytes=settings.max_body_bytes,
                      max_total_bytes=max_total_bytes or settings.max_body_bytes,
                      spool_dir=settings.data_dir / "spool")


def _read(limits: BodyLimits) -> SoapRequest:
    declared = request.content_length
    if declared is not None and declared > limits.max_total_bytes:
        raise PayloadTooLarge(limits.max_total_bytes)
    try:
        return read_soap_request(request.content_type, request.stream, limits)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(limits.max_total_bytes) from None


def _rollback() -> None:
    session = g.get("db_session")
    if session is not None:
        session.rollback()


def handle_soap(operations: dict[str, SoapOperation], max_total_bytes: int | None = None) -> Response:
    """Answer one SOAP request; `max_total_bytes` admits MTOM bodies larger than an envelope."""
    started = time.perf_counter()
    transaction = "unknown"
    soap: SoapRequest | None = None
    operation: SoapOperation | None = None
    caller: Caller | None = None
    outcome = "fault"
    try:
        if peer_certificate_der() is None:
            raise AuthenticationFault("a client certificate is required", error="invalid_request")
        # Where bodies may be large, nobody unauthenticated gets to make the hub spool them.
        early = authenticate(None) if max_total_bytes else None
        soap = _read(_limits(max_total_bytes))
        operation = operations.get(soap.action)
        if operation is None:
            raise SenderFault(f"action {soap.action!r} is not supported at this endpoint",
                              subcode="wsa:ActionNotSupported")
        transaction = operation.transaction
        g.transaction = transaction
        if early is not None:
            g.caller = early
            require_scope(early.scopes, operation.scope)
            caller = early
        else:
            caller = authenticate(operation.scope)
        g.caller = caller
        session = get_session()
        try:
            answer = operation.handle(caller, session, soap)
            if operation.audit is not None:
                record_transaction(session, operation.audit, caller, Outcome.SUCCESS)
            session.commit()
        except (XdsError, XdsErrorList) as exc:
            session.rollback()
            outcome = "error"
            if operation.audit is not None:
                record_failure(operation.audit, caller, str(exc))
            return registry_error_response(operation.render_errors, exc, operation.response_action,
                                           soap.message_id, soap.mtom)
        outcome = "success"
        return soap_response(operation.response_action, answer, soap.message_id, soap.mtom)
    except SoapFault as fault:
        _rollback()
        if operation is not None and operation.audit is not None and caller is not None:
            record_failure(operation.audit, caller, fault.reason, Outcome.SERIOUS_FAILURE)
        else:   # refused before a transaction ran: certificate, token, scope, unreadable message
            record_refusal(fault.reason, operation.transaction if operation is not None else None)
        return fault_response(fault, soap.message_id if soap else None, soap.mtom if soap else False)
    except Exception as exc:  # translated at this boundary, never leaked
        _rollback()
        internal = unexpected_fault(exc, g.get("request_id"))
        if operation is not None and operation.audit is not None:
            record_failure(operation.audit, caller, internal.reason, Outcome.MAJOR_FAILURE)
        return fault_response(internal, soap.message_id if soap else None)
    finally:
        if soap is not None:
            soap.close()
        observe_transaction(transaction, outcome, time.perf_counter() - started)
