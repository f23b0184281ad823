"""QIDO-RS Search for studies, series and instances (PS3.18 10.6; IHE RAD-129), in SQL over dicom_instances.

Query parameters (PS3.18 8.3.4): `{attribute}={value}` with the attribute as
keyword or eight hex digits, `includefield` (keywords, tags or `all`, comma
separated or repeated), `fuzzymatching`, `limit` and `offset`. Anything else,
a malformed value or matching on an attribute this hub does not hold is a
BadRequest naming it. Matching follows PS3.4 C.2.2.2:

- single value matching, exact; person names (PN) case-insensitive;
- wildcards `*` and `?` in text values (not in UIDs, numbers, dates);
- list of UID matching, UIDs separated by "," or "\\" (PS3.18 8.3.4.1);
- range matching for dates (`YYYYMMDD-YYYYMMDD`, either end open) and times;
- an empty value is universal matching: the attribute is returned, nothing filtered.

Fuzzy matching is not supported: `fuzzymatching=true` is answered with literal
matching and a Warning (299) saying so (PS3.18 8.3.4.2). An empty result is
200 with an empty array (PS3.18 2026a: "This status code is also used to
indicate a successful search that yields zero results"; older editions also
allowed 204, dicomweb-client takes both).

Study and series results are GROUP BY over the instance rows the caller may
see (`repository.visibility`); their counts (NumberOfStudyRelated...) count
only those, so a query never reveals what the caller may not see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cache, lru_cache
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, Select, and_, bindparam, case, distinct, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from hub.security.identity import Caller
from repository.dicomfile import is_valid_uid
from repository.dicomweb.dicomjson import element
from repository.dicomweb.errors import BadRequest
from repository.tables import DicomInstance as I  # noqa: N817
from repository.visibility import visible_clause, visible_to

__all__ = ["ATTRIBUTES", "Level", "Search", "SearchResult", "parse_search", "search"]

MAX_RESULTS = 1000      # per answer; more are asked for with offset (PS3.18 8.3.4.4 paging)
FUZZY_WARNING = ('299 xdshub: "The fuzzymatching parameter is not supported. '
                 'Only literal matching has been performed."')
MORE_WARNING = ('299 xdshub: "The number of results exceeded the maximum supported by the server. '
                'Additional results can be requested."')


class Level(IntEnum):
    STUDY = 1
    SERIES = 2
    INSTANCE = 3


@dataclass(frozen=True)
class Attribute:
    keyword: str
    vr: str
    level: Level
    column: InstrumentedAttribute[Any] | None    # None: computed (counts, RetrieveURL)
    key: str = field(init=False)                  # the DICOM JSON key: the tag in eight hex digits

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{tag_for_keyword(self.keyword):08X}")


def _attributes(*specs: tuple[str, str, Level, InstrumentedAttribute[Any] | None]) -> dict[str, Attribute]:
    return {keyword: Attribute(keyword, vr, level, column) for keyword, vr, level, column in specs}


S, E, N = Level.STUDY, Level.SERIES, Level.INSTANCE
ATTRIBUTES = _attributes(
    ("StudyDate", "DA", S, I.study_date), ("StudyTime", "TM", S, I.study_time),
    ("AccessionNumber", "SH", S, I.accession_number), ("ModalitiesInStudy", "CS", S, I.modality),
    ("ReferringPhysicianName", "PN", S, I.referring_physician_name), ("PatientName", "PN", S, I.patient_name),
    ("PatientID", "LO", S, I.dicom_patient_id), ("IssuerOfPatientID", "LO", S, I.issuer_of_patient_id),
    ("PatientBirthDate", "DA", S, I.patient_birth_date), ("PatientSex", "CS", S, I.patient_sex),
    ("StudyInstanceUID", "UI", S, I.study_instance_uid), ("StudyID", "SH", S, I.study_id),
    ("StudyDescription", "LO", S, I.study_description),
    ("NumberOfStudyRelatedSeries", "IS", S, None), ("NumberOfStudyRelatedInstances", "IS", S, None),
    ("Modality", "CS", E, I.modality), ("SeriesInstanceUID", "UI", E, I.series_instance_uid),
    ("SeriesNumber", "IS", E, I.series_number), ("SeriesDescription", "LO", E, I.series_description),
    ("BodyPartExamined", "CS", E, I.body_part_examined), ("NumberOfSeriesRelatedInstances", "IS", E, None),
    ("SOPClassUID", "UI", N, I.sop_class_uid), ("SOPInstanceUID", "UI", N, I.sop_instance_uid),
    ("InstanceNumber", "IS", N, I.instance_number), ("Rows", "US", N, I.rows), ("Columns", "US", N, I.columns),
    ("BitsAllocated", "US", N, I.bits_allocated), ("NumberOfFrames", "IS", N, I.number_of_frames),
)
# PS3.18 Tables 10.6.3-3, -4, -5: returned whatever the query asked (RetrieveURL is added to each)
REQUIRED = {
    Level.STUDY: ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
                  "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                  "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    Level.SERIES: ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID",
                   "NumberOfSeriesRelatedInstances"),
    Level.INSTANCE: ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "BitsAllocated",
                     "NumberOfFrames"),
}
CONTROL = frozenset({"includefield", "fuzzymatching", "limit", "offset"})
_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


@dataclass
class Search:
    """A parsed query: what the path names, the conditions, and what to return."""

    level: Level                                  # what is searched for
    top: Level                                    # the highest level the answer describes
    study_uid: str | None = None                  # from the path
    series_uid: str | None = None
    filters: list[tuple[Attribute, str]] = field(default_factory=list)
    include: set[str] = field(default_factory=set)   # keywords
    limit: int = MAX_RESULTS
    offset: int = 0
    limited: bool = False                          # the caller gave limit
    warnings: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    items: list[dict[str, Any]]
    warnings: list[str]
    studies: list[str]                             # for the audit record


def _attribute_name(name: str) -> str | None:
    """The keyword a parameter names (keyword or hex tag), None for no DICOM attribute."""
    if _HEX_TAG.fullmatch(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def _number(name: str, value: str, low: int = 0) -> int:
    if not value.isdigit() or int(value) < low:
        raise BadRequest(f"{name} must be a whole number{' of at least ' + str(low) if low else ''}, "
                         f"got {value[:40]!r}")
    return int(value)


def _value_list(value: str) -> list[str]:
    """The values of a list match, separated by "," or "\\" (PS3.18 8.3.4.1)."""
    return [v for v in re.split(r"[,\\]", value) if v]


def _check_value(attribute: Attribute, value: str) -> None:
    name, vr = attribute.keyword, attribute.vr
    if vr == "UI":
        uids = _value_list(value)
        bad = [u for u in uids if not is_valid_uid(u)]
        if not uids or bad:
            raise BadRequest(f"{name} must be a UID or a list of UIDs separated by commas (no wildcards), "
                             f"got {value[:80]!r}")
    elif vr in ("DA", "TM"):
        pattern = _DATE if vr == "DA" else _TIME
        low, dash, high = value.partition("-")
        ends = [low, high] if dash else [low]
        if (dash and not (low or high)) or any(end and not pattern.fullmatch(end) for end in ends):
            form = "YYYYMMDD" if vr == "DA" else "HHMMSS"
            raise BadRequest(f"{name} must be {form} or a range {form}-{form} (either end may be left open), "
                             f"got {value[:80]!r}")
    elif vr in ("IS", "US"):
        if not value.isdigit():
            raise BadRequest(f"{name} must be a whole number (no wildcards or ranges), got {value[:40]!r}")


def parse_search(level: Level, params: Sequence[tuple[str, str]], study_uid: str | None = None,
                 series_uid: str | None = None) -> Search:
    """The search the path and query parameters ask for; BadRequest naming what is wrong."""
    top = Level.STUDY if study_uid is None else (Level.SERIES if series_uid is None else Level.INSTANCE)
    search = Search(level=level, top=min(top, level), study_uid=study_uid, series_uid=series_uid)
    seen: set[str] = set()
    for name, value in params:
        if name in CONTROL:
            _control(search, name, value)
            continue
        keyword = _attribute_name(name)
        if keyword is None:
            raise BadRequest(f"unknown query parameter {name[:64]!r}: neither a DICOM attribute (keyword or "
                             f"eight hex digits) nor one of {', '.join(sorted(CONTROL))}")
        attribute = ATTRIBUTES.get(keyword)
        if attribute is None or attribute.column is None or attribute.level > level:
            supported = ", ".join(a.keyword for a in ATTRIBUTES.values() if a.column is not None and a.level <= level)
            raise BadRequest(f"matching on {keyword} is not supported in a {level.name.lower()} search; "
                             f"supported: {supported}")
        if keyword in seen:
            raise BadRequest(f"{keyword} is given more than once")
        seen.add(keyword)
        search.include.add(keyword)
        if value != "":                       # empty: universal matching (PS3.4 C.2.2.2.3)
            _check_value(attribute, value)
            search.filters.append((attribute, value))
    return search


def _control(search: Search, name: str, value: str) -> None:
    if name == "includefield":
        for item in (v.strip() for v in value.split(",")):
            if item == "all":
                search.include.update(k for k, a in ATTRIBUTES.items() if search.top <= a.level <= search.level)
                continue
            keyword = _attribute_name(item)
            if keyword is None:
                raise BadRequest(f"includefield {item[:64]!r} is neither a DICOM keyword, eight hex digits nor 'all'")
            if keyword in ATTRIBUTES:      # other attributes are not held here: left out (PS3.18 10.6.3.3)
                search.include.add(keyword)
    elif name == "fuzzymatching":
        if value not in ("true", "false"):
            raise BadRequest(f"fuzzymatching must be true or false, got {value[:20]!r}")
        if value == "true" and FUZZY_WARNING not in search.warnings:
            search.warnings.append(FUZZY_WARNING)
    elif name == "limit":
        search.limit = min(_number("limit", value, 1), MAX_RESULTS)
        search.limited = True
    elif name == "offset":
        search.offset = _number("offset", value)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# QIDO's statements are built once per shape: which attributes are matched and how, what is returned, the
# level and the caller's organisation. The values go in as bound parameters. Building a statement and its
# cache key costs more than running it, and a shape recurs on nearly every request.

@dataclass(frozen=True)
class _Shape:
    level: Level
    organisation_id: int | None
    study: bool                                   # the path names a study
    series: bool                                  # ... and a series
    matching: tuple[tuple[str, str], ...]         # (keyword, how it is matched) per filter
    columns: tuple[str, ...]                      # keywords of the selected columns
    fold_modalities: bool
    dialect: str


def _matching(attribute: Attribute, value: str, name: str) -> tuple[str, dict[str, Any]]:
    """How one matching key matches (PS3.4 C.2.2.2), and its bound values, named after `name`."""
    if attribute.vr == "UI" or (attribute.keyword == "ModalitiesInStudy" and not ("*" in value or "?" in value)):
        # a UID list; a modality list matches any series of the study (PS3.4 C.6.1.1.3)
        return "in", {name: _value_list(value)}
    if attribute.vr in ("IS", "US"):
        return "equal", {name: int(value)}
    if attribute.vr in ("DA", "TM") and "-" in value:
        low, _, high = value.partition("-")
        # a stored time with more precision than the upper bound still matches it: compared on its length
        return f"range:{'low' if low else ''}:{len(high)}", {f"{name}_low": low, f"{name}_high": high}
    wildcard = "*" in value or "?" in value
    if attribute.vr == "PN":
        return ("ilike", {name: _like(value)}) if wildcard else ("lower", {name: value.lower()})
    return ("like", {name: _like(value)}) if wildcard else ("equal", {name: value})


def _condition(attribute: Attribute, how: str, name: str) -> ColumnElement[bool]:
    """The SQL condition of one matching key, its values left as parameters named after `name`."""
    column = attribute.column
    assert column is not None
    if how == "in":
        return column.in_(bindparam(name, expanding=True))
    if how == "equal":
        return column == bindparam(name)  # type: ignore[no-any-return]
    if how == "lower":
        return func.lower(column) == bindparam(name)  # type: ignore[no-any-return]
    if how == "ilike":
        return column.ilike(bindparam(name), escape="\\")  # type: ignore[no-any-return]
    if how == "like":
        return column.like(bindparam(name), escape="\\")  # type: ignore[no-any-return]
    _, low, high = how.split(":")
    high_length = int(high)                       # 0: the range has no upper bound
    conditions = [column != ""]
    if low:
        conditions.append(column >= bindparam(f"{name}_low"))
    if high_length:
        conditions.append(func.substr(column, 1, high_length) <= bindparam(f"{name}_high"))
    return and_(*conditions)


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    conditions = [visible_to(shape.organisation_id)]
    if shape.study:
        conditions.append(I.study_instance_uid == bindparam("study_uid"))
    if shape.series:
        conditions.append(I.series_instance_uid == bindparam("series_uid"))
    conditions += [_condition(ATTRIBUTES[keyword], how, f"v{index}")
                   for index, (keyword, how) in enumerate(shape.matching)]
    return conditions


def _returned(search: Search) -> list[Attribute]:
    """The attributes of each result: required ones of every level from top to level, and those asked for."""
    keywords = [k for level in Level if search.top <= level <= search.level for k in REQUIRED[level]]
    keywords += sorted(k for k in search.include if k not in keywords and search.top <= ATTRIBUTES[k].level)
    if search.level >= Level.SERIES and "StudyInstanceUID" not in keywords:
        keywords.append("StudyInstanceUID")     # the keys of the levels above, so that a result can be retrieved
    if search.level == Level.INSTANCE and "SeriesInstanceUID" not in keywords:
        keywords.append("SeriesInstanceUID")
    return [ATTRIBUTES[k] for k in keywords]


def _page(query: Select[Any]) -> Select[Any]:
    return query.offset(bindparam("offset")).limit(bindparam("limit"))


@lru_cache(maxsize=512)
def _statement(shape: _Shape) -> Select[Any]:
    """The search's statement: its rows hold the selected columns, then the study, series (and instance) UIDs;
    for a study or series search then the modalities (if folded), the series count and the instance count."""
    conditions = _conditions(shape)
    columns: list[Any] = [ATTRIBUTES[keyword].column for keyword in shape.columns]
    if shape.level == Level.INSTANCE:
        return _page(select(*columns, I.study_instance_uid, I.series_instance_uid, I.sop_instance_uid)
                     .where(*conditions)
                     .order_by(I.study_instance_uid, I.series_instance_uid, I.instance_number, I.sop_instance_uid))
    key = I.study_instance_uid if shape.level == Level.STUDY else I.series_instance_uid
    matched = select(key).where(*conditions).distinct()
    group = [I.study_instance_uid] + ([I.series_instance_uid] if shape.level == Level.SERIES else [])
    aggregates: list[Any] = [_SERIES_COUNT, _INSTANCE_COUNT]
    if shape.fold_modalities:
        aggregates.insert(0, _modality_list(shape.dialect))
    return _page(select(*[_first(keyword) for keyword in shape.columns], *group, *aggregates)
                 .where(visible_to(shape.organisation_id), key.in_(matched)).group_by(*group).order_by(*group))


def search(session: Session, caller: Caller, query: Search, base_url: str) -> SearchResult:
    """Run the search; `base_url` is the service root for RetrieveURL (e.g. https://hub/dicomweb)."""
    returned = _returned(query)
    columns = [a for a in returned if a.column is not None and a.keyword != "ModalitiesInStudy"]
    wants_modalities = any(a.keyword == "ModalitiesInStudy" for a in returned)
    fold_modalities = wants_modalities and query.level == Level.STUDY
    parameters: dict[str, Any] = {"offset": query.offset, "limit": query.limit + 1,
                                  "study_uid": query.study_uid, "series_uid": query.series_uid}
    matching = []
    for index, (attribute, value) in enumerate(query.filters):
        how, values = _matching(attribute, value, f"v{index}")
        matching.append((attribute.keyword, how))
        parameters.update(values)
    connection = session.connection()
    shape = _Shape(query.level, caller.organisation_id, query.study_uid is not None, query.series_uid is not None,
                   tuple(matching), tuple(a.keyword for a in columns), fold_modalities, connection.dialect.name)
    rows: list[Any] = list(connection.execute(_statement(shape), parameters).all())
    if query.level == Level.INSTANCE:
        counts: list[dict[str, int]] = [{} for _ in rows]
    else:
        counts = [{"NumberOfStudyRelatedSeries": row[-2], "NumberOfStudyRelatedInstances": row[-1],
                   "NumberOfSeriesRelatedInstances": row[-1]} for row in rows]
    warnings = list(query.warnings)
    if len(rows) > query.limit:
        rows, counts = rows[:query.limit], counts[:query.limit]
        if not query.limited:
            warnings.append(MORE_WARNING)
    study_uids = [row[len(columns)] for row in rows]
    if fold_modalities:      # the study rows carry them already, one query in all (PS3.4 C.6.1.1.3)
        modalities = {row[len(columns)]: sorted(set((row[-3] or "").split(SEPARATOR)) - {""}) for row in rows}
    else:
        modalities = _modalities(session, caller, sorted(set(study_uids))) if wants_modalities else {}
    items = []
    for row, count in zip(rows, counts, strict=True):
        values = dict(zip((a.keyword for a in columns), row, strict=False))
        study_uid = row[len(columns)]
        values["ModalitiesInStudy"] = modalities.get(study_uid, [])
        if query.level == Level.STUDY:
            counts_here = {k: v for k, v in count.items() if k.startswith("NumberOfStudy")}
        else:
            counts_here = {k: v for k, v in count.items() if k.startswith("NumberOfSeries")}
        items.append(_item(returned, values, counts_here, _retrieve_url(base_url, query.level, row, len(columns))))
    return SearchResult(items, warnings, sorted(set(study_uids)))


def _retrieve_url(base_url: str, level: Level, row: Any, at: int) -> str:
    url = f"{base_url}/studies/{row[at]}"
    if level >= Level.SERIES:
        url += f"/series/{row[at + 1]}"
    if level == Level.INSTANCE:
        url += f"/instances/{row[at + 2]}"
    return url


SEPARATOR = ","     # SQLite's group_concat(DISTINCT ...) separator; no CS value holds it (PS3.5 6.2)


# The aggregates of study and series searches, built once: building SQL expressions costs more per request
# than the query they belong to, and they are immutable, so one serves every statement and thread.
_SERIES_COUNT, _INSTANCE_COUNT = func.count(distinct(I.series_instance_uid)), func.count()


@cache
def _first(keyword: str) -> ColumnElement[Any]:
    """An attribute of a study or series search: the same in every row of the group (taken from any one)."""
    column = ATTRIBUTES[keyword].column
    assert column is not None
    return func.min(column)


@cache
def _modality_list(dialect: str) -> ColumnElement[Any]:
    """The distinct non-empty modalities of a group, joined by SEPARATOR (one aggregate, either database)."""
    modality = case((I.modality != "", I.modality))
    if dialect == "postgresql":
        return func.string_agg(distinct(modality), SEPARATOR)
    return func.group_concat(distinct(modality))   # SQLite: with DISTINCT only the default separator ","


def _modalities(session: Session, caller: Caller, study_uids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if not study_uids:
        return found
    for study_uid, modality in session.execute(
            select(I.study_instance_uid, I.modality).distinct()
            .where(visible_clause(caller), I.study_instance_uid.in_(study_uids), I.modality != "")
            .order_by(I.study_instance_uid, I.modality)):
        found.setdefault(study_uid, []).append(modality)
    return found


def _item(returned: list[Attribute], values: dict[str, Any], counts: dict[str, int],
          retrieve_url: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for attribute in returned:
        if attribute.keyword in counts:
            item[attribute.key] = element(attribute.vr, [counts[attribute.keyword]])
        elif attribute.keyword == "ModalitiesInStudy":
            item[attribute.key] = element("CS", values.get("ModalitiesInStudy", []))
        elif attribute.column is not None:
            item[attribute.key] = element(attribute.vr, [values.get(attribute.keyword)])
    item["00081190"] = element("UR", [retrieve_url])
    return dict(sorted(item.items()))
