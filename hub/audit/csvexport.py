"""CSV of audit records and of a disclosure report, streamed one line at a time (`hub.csvfile`: RFC 4180,
formulas defused). Feed the iterators to a streaming response; pair `records_csv` with
`hub.audit.query.search_all` to export every matching record, not a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from hub.audit import codes
from hub.audit.disclosure import DOCUMENT, STUDY, Disclosure
from hub.audit.tables import AuditRecord
from hub.clock import as_utc
from hub.csvfile import csv_lines, safe_cell

__all__ = ["DISCLOSURE_COLUMNS", "RECORD_COLUMNS", "disclosures_csv", "records_csv", "safe_cell"]

RECORD_COLUMNS = ("seq", "recorded_at", "event_id", "event", "event_type", "action", "outcome", "organisation",
                  "user", "client_address", "patient_id", "study_uid", "hash")
DISCLOSURE_COLUMNS = ("seq", "recorded_at", "recipient_kind", "recipient_id", "recipient_name", "address",
                      "transaction", "outcome", "studies", "documents")


def _stamp(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).isoformat()


def records_csv(records: Iterable[AuditRecord]) -> Iterator[str]:
    """The header line, then one CSV line per record (RECORD_COLUMNS), each ending in CRLF."""
    return csv_lines(RECORD_COLUMNS, (
        (r.seq, _stamp(r.recorded_at), r.event_id, codes.display_name(r.event_id), r.event_type, r.action,
         r.outcome, r.organisation_oid, r.user_id, r.client_address, r.patient_id, r.study_uid, r.hash)
        for r in records))


def _ids(objects: tuple[tuple[str, str], ...], kind: str) -> str:
    return " ".join(object_id for object_kind, object_id in objects if object_kind == kind)


def disclosures_csv(rows: Iterable[Disclosure]) -> Iterator[str]:
    """The header line, then one CSV line per disclosure (DISCLOSURE_COLUMNS), each ending in CRLF.

    The studies and documents disclosed are two columns, the UIDs in each
    separated by spaces (a UID or OID never holds one).
    """
    return csv_lines(DISCLOSURE_COLUMNS, (
        (d.seq, _stamp(d.recorded_at), d.recipient_kind, d.recipient_id, d.recipient_name, d.address,
         d.transaction, d.outcome, _ids(d.objects, STUDY), _ids(d.objects, DOCUMENT))
        for d in rows))
