"""The stored query framework: declared parameters, SQL building blocks, bounded results.

Every query selects row ids on indexed columns (registry_objects columns and
registry_codes through EXISTS), with the caller's visibility in the WHERE
clause and at most `limit + 1` rows fetched, so a too-broad query is refused
with XDSTooManyResults before anything large is loaded (ITI TF-2a 3.18.4.1.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from hub.errors import TooManyResults
from registry.queries.params import CodeValue, Param, Parameters
from registry.store import pad_dtm
from registry.tables import AUTHOR_PERSON, RegistryCodeRow, RegistryObjectRow
from registry.vocabulary import AssociationType, ObjectKind, StoredQueryId

R = RegistryObjectRow
C = RegistryCodeRow


@dataclass(frozen=True)
class Visibility:
    """Which organisation asks: restricted rows are visible only to their submitter."""

    organisation_id: int | None

    def clause(self, table: type[RegistryObjectRow] = R) -> ColumnElement[bool]:
        if self.organisation_id is None:
            return table.restricted.is_(False)
        return or_(table.restricted.is_(False), table.submitter_org_id == self.organisation_id)


@dataclass
class QueryContext:
    session: Session
    params: Parameters
    visibility: Visibility
    limit: int
    ids: list[str] = field(default_factory=list)

    def fetch_ids(self, statement: Select[tuple[str]]) -> list[str]:
        """Ids a statement selects, refused when more than the limit match."""
        rows = list(self.session.scalars(statement.where(self.visibility.clause())
                                         .order_by(R.registered_at, R.id).limit(self.limit + 1)))
        self.add(rows)
        return rows

    def add(self, ids: Iterable[str]) -> None:
        seen = set(self.ids)
        for ident in ids:
            if ident not in seen:
                self.ids.append(ident)
                seen.add(ident)
        if len(self.ids) > self.limit:
            raise TooManyResults(f"the query matches more than {self.limit} objects; narrow it down",
                                 "AdhocQuery")


class StoredQueryHandler:
    """One stored query: its id, its parameters and how it selects objects."""

    query_id: ClassVar[StoredQueryId]
    parameters: ClassVar[tuple[Param, ...]]

    def run(self, ctx: QueryContext) -> None:  # adds the matching ids to ctx
        raise NotImplementedError


# -- building blocks --------------------------------------------------------------------------

def ids_of(kind: ObjectKind) -> Select[tuple[str]]:
    return select(R.id).where(R.kind == kind.value)


def status_in(values: Sequence[str]) -> ColumnElement[bool]:
    return R.status.in_(values)


def codes_match(scheme: str, slots: list[list[CodeValue]]) -> list[ColumnElement[bool]]:
    """AND over slots of (OR over the slot's codes), each an EXISTS on registry_codes."""
    clauses = []
    for slot in slots:
        alternatives = [
            and_(C.code == value.code, C.coding_scheme == value.scheme) if value.scheme else C.code == value.code
            for value in slot
        ]
        clauses.append(exists().where(C.object_id == R.id, C.scheme == scheme, or_(*alternatives)))
    return clauses


def values_match(scheme: str, values: list[str], like: bool = False) -> ColumnElement[bool]:
    """EXISTS a registry_codes row of the pseudo scheme with one of the values (LIKE when asked)."""
    if like:
        match = or_(*[C.code.like(v, escape="\\") for v in values]) if values else false()
    else:
        match = C.code.in_(values)
    return exists().where(C.object_id == R.id, C.scheme == scheme, match)


def author_match(values: list[str]) -> ColumnElement[bool]:
    return values_match(AUTHOR_PERSON, values, like=True)


def time_range(column: ColumnElement[str | None], start: str | None, end: str | None
               ) -> list[ColumnElement[bool]]:
    """From inclusive, To exclusive on the padded DTM column (ITI TF-2a 3.18.4.1.2.3.6)."""
    clauses: list[ColumnElement[bool]] = []
    if start:
        clauses.append(column >= pad_dtm(start))
    if end:
        clauses.append(column < pad_dtm(end))
    return clauses


def members_of(source_ids: Select[tuple[str]] | list[str], kind: ObjectKind | None = None
               ) -> Select[tuple[str]]:
    """Targets of HasMember associations whose source is one of `source_ids`."""
    A = RegistryObjectRow.__table__.alias("member_assoc")
    targets = select(A.c.target_object).where(
        A.c.kind == ObjectKind.ASSOCIATION.value,
        A.c.association_type == AssociationType.HAS_MEMBER.value,
        A.c.source_object.in_(source_ids),
    )
    statement = select(R.id).where(R.id.in_(targets))
    return statement.where(R.kind == kind.value) if kind else statement


def associations_among(ids: list[str], types: Sequence[str] | None = None) -> Select[tuple[str]]:
    statement = select(R.id).where(R.kind == ObjectKind.ASSOCIATION.value, R.source_object.in_(ids),
                                   R.target_object.in_(ids))
    return statement.where(R.association_type.in_(types)) if types else statement


def associations_touching(ids: list[str], types: Sequence[str] | None = None) -> Select[tuple[str]]:
    statement = select(R.id).where(R.kind == ObjectKind.ASSOCIATION.value,
                                   or_(R.source_object.in_(ids), R.target_object.in_(ids)))
    return statement.where(R.association_type.in_(types)) if types else statement


def visible_ids(ctx: QueryContext, ids: Iterable[str]) -> list[str]:
    """Of `ids`, those the caller may see (in the given order)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    seen = set(ctx.session.scalars(select(R.id).where(R.id.in_(wanted), ctx.visibility.clause())))
    return [i for i in wanted if i in seen]
