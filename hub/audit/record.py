"""Recording an audit event: the DICOM audit message rendered, its queryable fields, appended to the chain.

`record(session, event, settings)` writes in the caller's transaction: the
effect and its record commit together, or neither does.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hub.audit.chain import Entry, append
from hub.audit.message import AuditEvent, render_audit_message
from hub.audit.tables import AuditRecord
from hub.settings import Settings


def entry_of(event: AuditEvent) -> Entry:
    requestor = next((p for p in event.participants if p.requestor), None)
    return Entry(
        event_id=event.event_id.code,
        event_type=event.type_codes[0].code if event.type_codes else "",
        action=event.action.value,
        outcome=int(event.outcome),
        message=render_audit_message(event).decode("utf-8"),
        organisation_oid=requestor.user_id if requestor is not None else "",
        user_id=(requestor.alternative_user_id or "") if requestor is not None else "",
        client_address=(requestor.network_access_point or "") if requestor is not None else "",
        patient_id=(event.patient_ids or ("",))[0],
        study_uid=(event.study_uids or ("",))[0],
    )


def record(session: Session, event: AuditEvent, settings: Settings) -> AuditRecord:
    """Append `event` to the audit chain in the session's transaction (the caller commits)."""
    return append(session, entry_of(event), settings.path(settings.signing_key))
