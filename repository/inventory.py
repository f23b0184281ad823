"""The acquisition inventory: studies, instances and bytes by institution, department, station, modality,
manufacturer and month, so an imaging lead sees which service lines produce what.

Counted in SQL over `dicom_instances` (manifests excluded), grouped by any
subset of the dimensions. The month is the study's (StudyDate), else the
month the hub received the instance. An organisation sees the inventory of
the instances it sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, func, select
from sqlalchemy.orm import Session

from repository.tables import DicomInstance
from repository.vocabulary import KOS_FORMAT_CODE

DIMENSIONS = ("institution", "department", "station", "modality", "manufacturer", "month")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class BadInventoryRequest(ValueError):
    pass


@dataclass(frozen=True)
class InventoryRow:
    group: dict[str, str]
    studies: int
    instances: int
    bytes: int


def _received_month(session: Session) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", DicomInstance.stored_at), "YYYY-MM")
    return func.strftime("%Y-%m", DicomInstance.stored_at)


def _month(session: Session) -> ColumnElement[Any]:
    date = DicomInstance.study_date
    study_month = func.substr(date, 1, 4) + "-" + func.substr(date, 5, 2)
    return case((func.length(date) >= 6, study_month), else_=cast(_received_month(session), String))


def _columns(session: Session) -> dict[str, Any]:
    return {
        "institution": DicomInstance.institution_name, "department": DicomInstance.department,
        "station": DicomInstance.station_name, "modality": DicomInstance.modality,
        "manufacturer": DicomInstance.manufacturer, "month": _month(session),
    }


def parse_dimensions(text: str | None) -> tuple[str, ...]:
    """`by=modality,month` → ("modality", "month"); every dimension when absent."""
    if text is None or text.strip() == "":
        return DIMENSIONS
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in DIMENSIONS]
    if unknown:
        raise BadInventoryRequest(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
    return chosen


def check_month(name: str, value: str | None) -> str | None:
    if value is not None and not MONTH.fullmatch(value):
        raise BadInventoryRequest(f"{name} must be a month YYYY-MM, got {value!r}")
    return value


def inventory(session: Session, organisation_id: int | None, by: tuple[str, ...] = DIMENSIONS,
              since: str | None = None, until: str | None = None) -> list[InventoryRow]:
    """Counts per group of `by`, largest first; `since`/`until` are months (YYYY-MM, inclusive)."""
    columns = _columns(session)
    keys = [columns[name].label(name) for name in by]
    query = (select(*keys, func.count(func.distinct(DicomInstance.study_instance_uid)),
                    func.count(DicomInstance.sop_instance_uid), func.coalesce(func.sum(DicomInstance.size), 0))
             .where(DicomInstance.sop_class_uid != KOS_FORMAT_CODE,
                    DicomInstance.submitter_org_id == organisation_id))
    if since is not None:
        query = query.where(columns["month"] >= since)
    if until is not None:
        query = query.where(columns["month"] <= until)
    if keys:
        query = query.group_by(*keys)
    rows = []
    for row in session.execute(query):
        values = tuple(row)
        rows.append(InventoryRow(dict(zip(by, (str(v or "") for v in values[:len(by)]), strict=True)),
                                 int(values[-3]), int(values[-2]), int(values[-1])))
    return sorted(rows, key=lambda r: (-r.instances, tuple(r.group.values())))
