"""What a transaction tells its audit record, collected while it runs.

A SOAP handler fills the request's `AuditDetails` (patient, submission set,
documents, studies, query) as it parses and answers; the endpoint turns them
into the transaction's audit event (`hub.audit.events`) with the outcome, and
records it in the same database transaction as the effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AuditDetails:
    transaction: str = ""
    patient_id: str | None = None
    submission_set_uid: str | None = None
    query_id: str = ""
    query_xml: bytes = b""
    home_community_id: str | None = None
    documents: list[tuple[str, str, str | None]] = field(default_factory=list)   # uid, repository, home
    studies: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # study, [(class, instance)]
    outcome: int | None = None  # set by a handler whose answer is a failure without an exception (ITI-43)
    recorded: bool = False      # the transaction recorded its event itself (inside its own commit)


def current_details() -> AuditDetails:
    """The details of the request being served (a fresh, unused object outside a request)."""
    from flask import g, has_app_context

    if not has_app_context():
        return AuditDetails()
    if "audit_details" not in g:
        g.audit_details = AuditDetails()
    return g.audit_details  # type: ignore[no-any-return]
