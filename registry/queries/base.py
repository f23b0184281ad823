"""The stored query framework: declared parameters, SQL building blocks, bounded results.

Every query selects row ids on indexed columns (registry_objects columns and
registry_codes through EXISTS), with the caller's visibility in the WHERE
clause and at most `limit + 1` rows fetched per statement, so a too-broad
query is refused with XDSTooManyResults before anything large is loaded
(ITI TF-2a 3.18.4.1.3). Content is loaded later, only for the ids returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from hub.errors import TooManyResults
from registry.queries.params import CodeValue, Param, Parameters
from registry.store import pad_dtm
from registry.tables import AUTHOR_PERSON, RegistryCodeRow, RegistryObjectRow
from registry.vocabulary import AssociationType, ObjectKind, StoredQueryId

R = RegistryObjectRow
C = RegistryCodeRow

HAS_MEMBER = AssociationType.HAS_MEMBER.value


@dataclass(frozen=True)
class Visibility:
    """Which organisation asks: restricted rows are visible only to their submitter."""

    organisation_id: int | None

    def clause(self, table: type[RegistryObjectRow] = R) -> ColumnElement[bool]:
        """The row of `table` (RegistryObjectRow or an alias of it) may be seen."""
        if self.organisation_id is None:
            return table.restricted.is_(False)
        return or_(table.restricted.is_(False), table.submitter_org_id == self.organisation_id)

    def association_clause(self, table: type[RegistryObjectRow] = R) -> ColumnElement[bool]:
        """An association row that may be seen: itself visible and both of its ends visible.

        An end is a registry row (document, folder, set, or another association, for
        a SubmissionSet's HasMember to a folder link); a hidden or unknown end hides
        the association, so no entryUUID of a restricted object leaks through a link.
        """
        source = aliased(RegistryObjectRow, name="visible_source")
        target = aliased(RegistryObjectRow, name="visible_target")
        return and_(
            self.clause(table),
            exists().where(source.id == table.source_object, self.clause(source)),
            exists().where(target.id == table.target_object, self.clause(target)),
        )


@dataclass
class QueryContext:
    """What one running query holds: its inputs and the ids found so far, in order."""

    session: Session
    params: Parameters
    visibility: Visibility
    limit: int
    ids: list[str] = field(default_factory=list)

    def fetch_ids(self, statement: Select[str]) -> list[str]:
        """Visible ids a statement over documents, folders or sets selects (at most limit + 1 read)."""
        return self._fetch(statement.where(self.visibility.clause()))

    def fetch_associations(self, statement: Select[str]) -> list[str]:
        """Like `fetch_ids` for association rows: their ends must be visible too."""
        return self._fetch(statement.where(self.visibility.association_clause()))

    def _fetch(self, statement: Select[str]) -> list[str]:
        rows = list(self.session.scalars(statement.order_by(R.registered_at, R.id).limit(self.limit + 1)))
        self.add(rows)
        return rows

    def add(self, ids: Iterable[str]) -> None:
        """Append ids not yet found; XDSTooManyResults once more than `limit` are found."""
        seen = set(self.ids)
        for ident in ids:
            if ident not in seen:
                self.ids.append(ident)
                seen.add(ident)
        if len(self.ids) > self.limit:
            raise TooManyResults(f"the query matches more than {self.limit} objects; narrow it down",
                                 "AdhocQuery")


class StoredQueryHandler:
    """One stored query: its id, its declared parameters and how it selects objects.

    Subclasses set `query_id` and `parameters` and implement `select`; `run`
    is the entry point the ITI-18 transaction calls.
    """

    query_id: ClassVar[StoredQueryId]
    parameters: ClassVar[tuple[Param, ...]]
    # Parameters of which exactly one must be given ("either ... or ..., not both", e.g.
    # $XDSDocumentEntryEntryUUID / $XDSDocumentEntryUniqueId): none is XDSStoredQueryMissingParam,
    # both XDSStoredQueryParamNumber (ITI TF-2a 3.18.4.1.2.3.7.5-.13).
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def run(self, session: Session, params: Parameters, visibility: Visibility, limit: int) -> list[str]:
        """The entryUUIDs of the matching objects the caller may see, at most `limit` of them.

        Raises the parameter errors of ITI TF-2a 3.18.4.1.3 before any SQL runs,
        and XDSTooManyResults when more than `limit` objects match.
        """
        for group in self.one_of:
            params.exactly_one_of(*group)
        context = QueryContext(session, params, visibility, limit)
        self.select(context)
        return context.ids

    def select(self, ctx: QueryContext) -> None:
        """Add the matching ids to `ctx` (through `fetch_ids` / `fetch_associations`)."""
        raise NotImplementedError


# -- building blocks --------------------------------------------------------------------------

def ids_of(kind: ObjectKind) -> Select[str]:
    return select(R.id).where(R.kind == kind.value)


def status_in(values: Sequence[str]) -> ColumnElement[bool]:
    return R.status.in_(values)


def codes_match(scheme: str, slots: list[list[CodeValue]]) -> list[ColumnElement[bool]]:
    """AND over slots of (OR over the slot's codes), each an EXISTS on registry_codes.

    ITI TF-2a 3.18.4.1.2.3.5: values within one Slot are ORed, Slots of one name ANDed.
    """
    clauses: list[ColumnElement[bool]] = []
    for slot in slots:
        alternatives = [
            and_(C.code == value.code, C.coding_scheme == value.scheme) if value.scheme else C.code == value.code
            for value in slot
        ]
        clauses.append(exists().where(C.object_id == R.id, C.scheme == scheme, or_(*alternatives)))
    return clauses


def values_match(scheme: str, values: list[str], like: bool = False) -> ColumnElement[bool]:
    """EXISTS a registry_codes row of the pseudo scheme with one of the values.

    With `like`, each value is a LIKE pattern, matched without regard to case so
    SQLite (case-insensitive LIKE) and PostgreSQL (case-sensitive) answer alike.
    """
    if like:
        match = or_(*[C.code.ilike(v, escape="\\") for v in values]) if values else false()
    else:
        match = C.code.in_(values)
    return exists().where(C.object_id == R.id, C.scheme == scheme, match)


def author_match(values: list[str]) -> ColumnElement[bool]:
    """authorPerson LIKE any value: % and _ are the wildcards (ITI TF-2a 3.18.4.1.2.3.4)."""
    return values_match(AUTHOR_PERSON, values, like=True)


def time_range(column: InstrumentedAttribute[str | None], start: str | None, end: str | None
               ) -> list[ColumnElement[bool]]:
    """From inclusive, To exclusive on the padded DTM column (ITI TF-2a 3.18.4.1.2.3.7.1)."""
    clauses: list[ColumnElement[bool]] = []
    if start:
        clauses.append(column >= pad_dtm(start))
    if end:
        clauses.append(column < pad_dtm(end))
    return clauses


def members_of(source_ids: Select[str] | list[str], kind: ObjectKind | None = None
               ) -> Select[str]:
    """Objects that are targets of HasMember associations whose source is one of `source_ids`."""
    member = aliased(RegistryObjectRow, name="member_assoc")
    targets = select(member.target_object).where(
        member.kind == ObjectKind.ASSOCIATION.value,
        member.association_type == HAS_MEMBER,
        member.source_object.in_(source_ids),
    )
    statement = select(R.id).where(R.id.in_(targets))
    return statement.where(R.kind == kind.value) if kind else statement


def associations_among(ids: list[str], types: Sequence[str] | None = None) -> Select[str]:
    """Associations whose source and target are both in `ids`."""
    statement = select(R.id).where(R.kind == ObjectKind.ASSOCIATION.value, R.source_object.in_(ids),
                                   R.target_object.in_(ids))
    return statement.where(R.association_type.in_(types)) if types else statement


def associations_touching(ids: list[str], types: Sequence[str] | None = None) -> Select[str]:
    """Associations whose source or target is in `ids`."""
    statement = select(R.id).where(R.kind == ObjectKind.ASSOCIATION.value,
                                   or_(R.source_object.in_(ids), R.target_object.in_(ids)))
    return statement.where(R.association_type.in_(types)) if types else statement


def visible_ids(ctx: QueryContext, ids: Iterable[str]) -> list[str]:
    """Of `ids`, those that exist and the caller may see (in the given order)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    seen = set(ctx.session.scalars(select(R.id).where(R.id.in_(wanted), ctx.visibility.clause())))
    return [i for i in wanted if i in seen]
