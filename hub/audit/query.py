"""Searching the audit trail: filters on the indexed columns, newest first, cursor pagination.

The cursor is the seq of the last record of the page before; the next page
holds the records with a smaller seq, so pages stay stable while new records
are appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hub.audit.tables import AuditRecord

MAX_LIMIT = 500


@dataclass(frozen=True)
class AuditFilter:
    patient_id: str | None = None
    organisation_oid: str | None = None
    user_id: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    outcome: int | None = None
    study_uid: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    records: list[AuditRecord]
    next_cursor: int | None


def _filtered(query: Select[Any], criteria: AuditFilter) -> Select[Any]:
    equal: dict[Any, object] = {
        AuditRecord.patient_id: criteria.patient_id, AuditRecord.organisation_oid: criteria.organisation_oid,
        AuditRecord.user_id: criteria.user_id, AuditRecord.event_type: criteria.event_type,
        AuditRecord.event_id: criteria.event_id, AuditRecord.outcome: criteria.outcome,
        AuditRecord.study_uid: criteria.study_uid,
    }
    for column, value in equal.items():
        if value is not None:
            query = query.where(column == value)
    if criteria.since is not None:
        query = query.where(AuditRecord.recorded_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(AuditRecord.recorded_at < criteria.until)
    return query


def search(session: Session, criteria: AuditFilter, limit: int = 100, before: int | None = None) -> Page:
    """Records matching `criteria`, newest first, at most `limit`, older than seq `before` when given."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = _filtered(select(AuditRecord), criteria)
    if before is not None:
        query = query.where(AuditRecord.seq < before)
    rows: list[AuditRecord] = list(session.scalars(query.order_by(AuditRecord.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].seq if more and rows else None)
