"""Searching the audit trail: filters on the indexed columns, newest first, cursor pagination.

The cursor is the seq of the last record of the page before; the next page
holds the records with a smaller seq, so pages stay stable while new records
are appended. `search_all` walks every match the same way, for exports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hub.audit.tables import AuditRecord
from hub.clock import parse_iso

MAX_LIMIT = 500
OUTCOMES = (0, 4, 8, 12)
EXPORT_PAGE = 1000


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


class BadParameter(ValueError):
    """A filter value that is not what its parameter takes."""


def criteria_from_args(args: Mapping[str, str], organisation_oid: str | None = None) -> AuditFilter:
    """The filter named by query parameters: patient_id, organisation, user, event_type, event_id, outcome
    (0, 4, 8, 12), study_uid, since and until (ISO 8601; without a zone, UTC). `organisation_oid`, when
    given, replaces the organisation parameter. BadParameter names the first bad value."""
    outcome = args.get("outcome")
    if outcome is not None and outcome not in {str(o) for o in OUTCOMES}:
        raise BadParameter(f"outcome must be one of {', '.join(map(str, OUTCOMES))}, got {outcome!r}")
    return AuditFilter(
        patient_id=args.get("patient_id"), organisation_oid=organisation_oid or args.get("organisation"),
        user_id=args.get("user"), event_type=args.get("event_type"), event_id=args.get("event_id"),
        outcome=int(outcome) if outcome is not None else None, study_uid=args.get("study_uid"),
        since=_moment(args, "since"), until=_moment(args, "until"))


def _moment(args: Mapping[str, str], name: str) -> datetime | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise BadParameter(f"{name} must be an ISO 8601 date-time, got {value!r}") from None


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


def search_all(session: Session, criteria: AuditFilter, page_size: int = EXPORT_PAGE) -> Iterator[AuditRecord]:
    """Every record matching `criteria`, newest first, read in keyed pages of `page_size` records.

    Each page is expunged from the session once the caller has iterated past
    it, so memory stays flat however many records match: the records come
    back fully loaded but detached (read them, do not change them). Records
    appended during the walk are not included (they have a higher seq).
    The read transaction ends between pages, so a long export never holds the
    database (on SQLite every transaction is exclusive): give it a session
    of its own.
    """
    page_size = max(1, page_size)
    before: int | None = None
    while True:
        query = _filtered(select(AuditRecord), criteria)
        if before is not None:
            query = query.where(AuditRecord.seq < before)
        rows: list[AuditRecord] = list(session.scalars(query.order_by(AuditRecord.seq.desc()).limit(page_size)))
        yield from rows
        for row in rows:
            session.expunge(row)
        session.rollback()
        if len(rows) < page_size:
            return
        before = rows[-1].seq
