"""Audit records of HTTP requests: who asked (from the verified certificate and token), and the hub.

The endpoint calls `record_transaction` with the transaction's own event
builder once it knows the outcome, and `record_refusal` for a call refused
before any transaction ran (no or unknown certificate, bad token, wrong scope,
malformed message): a Security Alert (DICOM 110113) naming the reason.
A refusal's record commits on its own; a failure to write it is logged and
never changes the answer the caller gets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flask import g, request
from sqlalchemy.orm import Session

from hub import get_settings
from hub.audit.context import AuditDetails, current_details
from hub.audit.events import Party, audit_log_used, security_alert, token_issued
from hub.audit.message import AuditEvent, Outcome
from hub.audit.record import record
from hub.db import get_session
from hub.security.identity import Caller

log = logging.getLogger(__name__)

# (details, requestor, hub, outcome, time, source id, description) -> the transaction's audit event
EventBuilder = Callable[[AuditDetails, Party, Party, Outcome, datetime, str, str | None], AuditEvent]


def requestor_party(caller: Caller | None) -> Party:
    if caller is None:
        return Party(user_id="unauthenticated", address=request.remote_addr)
    return Party(user_id=caller.organisation_oid, address=request.remote_addr, name=caller.organisation_name,
                 alternative_id=caller.client_id)


def hub_party() -> Party:
    settings = get_settings()
    return Party(user_id=f"{settings.base_url}{request.path}", address=settings.host)


def source_id() -> str:
    return get_settings().base_url


def record_transaction(session: Session, build: EventBuilder, caller: Caller | None, outcome: Outcome,
                       description: str | None = None) -> None:
    """Append the transaction's event to the session's transaction (the caller commits)."""
    details = current_details()
    if details.recorded:
        return
    if details.outcome is not None and outcome == Outcome.SUCCESS:
        outcome = Outcome(details.outcome)
    event = build(details, requestor_party(caller), hub_party(), outcome, datetime.now(UTC), source_id(),
                  description)
    record(session, event, get_settings())
    details.recorded = True


def _record_alone(make: Callable[[Session], None], what: str) -> None:
    """Write a record in a transaction of its own (the request's effect, if any, rolled back first).

    A failure to write it is logged and never changes the answer the caller gets.
    """
    try:
        session = get_session()
        session.rollback()
        make(session)
        session.commit()
    except Exception:
        log.exception("could not record the audit event of %s", what)
        session = g.get("db_session")
        if session is not None:
            session.rollback()


def write_event(session: Session, event: AuditEvent) -> None:
    """Append `event` to the session's transaction (the caller commits)."""
    record(session, event, get_settings())


def record_refusal(reason: str, transaction: str | None, outcome: Outcome = Outcome.SERIOUS_FAILURE) -> None:
    """A Security Alert for a refused call, committed on its own."""
    _record_alone(lambda session: write_event(session, security_alert(
        requestor=requestor_party(g.get("caller")), hub=hub_party(), outcome=outcome, time=datetime.now(UTC),
        source_id=source_id(), reason=reason, transaction=transaction, path=request.path)), "a refused call")


def record_failure(build: EventBuilder, caller: Caller | None, description: str,
                   outcome: Outcome = Outcome.MINOR_FAILURE) -> None:
    """The transaction's event with a failure outcome, after its effect was rolled back."""
    _record_alone(lambda session: record_transaction(session, build, caller, outcome, description[:1000]),
                  "a failed transaction")


def record_token_request(status: int, scopes: str, error: str | None) -> None:
    """User Authentication (DICOM 110114) for every token request, granted or refused; committed on its own."""
    binding = g.get("xdshub_token_binding")
    client_id = request.authorization.username if request.authorization and request.authorization.username \
        else request.form.get("client_id", "")
    requestor = Party(user_id=binding.organisation_oid if binding is not None else "unauthenticated",
                      address=request.remote_addr, alternative_id=client_id or None)
    outcome = Outcome.SUCCESS if status == 200 else (Outcome.MINOR_FAILURE if status < 500 else
                                                     Outcome.SERIOUS_FAILURE)
    _record_alone(lambda session: write_event(session, token_issued(
        requestor=requestor, hub=hub_party(), outcome=outcome, time=datetime.now(UTC), source_id=source_id(),
        client_id=client_id or "unknown", scopes=scopes, description=error)), "a token request")


def record_audit_read(reader: Caller | Party, what: str | None = None) -> None:
    """Audit Log Used (110101) for a read of the trail: an organisation through /api/audit or
    /fhir/AuditEvent, or a person at the console; `what` defaults to the URL read."""
    requestor = reader if isinstance(reader, Party) else requestor_party(reader)
    _record_alone(lambda session: write_event(session, audit_log_used(
        hub=hub_party(), outcome=Outcome.SUCCESS, time=datetime.now(UTC), source_id=source_id(),
        what=what or request.url, requestor=requestor)), "an audit trail read")
