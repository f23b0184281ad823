"""ITI-18 Registry Stored Query (ITI TF-2a 3.18).

Looks the stored query up by id (3.18.4.1.2.3.7), parses its parameters
(3.18.4.1.2.3.5), selects the matching objects the caller may see, and
returns them as ObjectRefs or as LeafClass objects (3.18.4.1.2.3.1; content
loaded only for the objects returned). More matches than
`settings.max_query_results` answer XDSTooManyResults (3.18.4.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import RegistryMetadataError, UnknownStoredQuery
from hub.federation.patients import resolve as resolve_patient
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import AnyObject, StoredQuery
from registry.queries import Visibility, handler_for
from registry.queries.params import Kind, Parameters
from registry.store import OBJECT_COLUMNS, object_from_columns
from registry.tables import RegistryObjectRow
from registry.vocabulary import ReturnType

RETURN_TYPES = frozenset(t.value for t in ReturnType)


@dataclass
class QueryResult:
    """What an AdhocQueryResponse carries: LeafClass objects or ObjectRef ids, per `return_type`."""

    return_type: str
    objects: list[AnyObject] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)


def run_stored_query(session: Session, query: StoredQuery, caller: Caller, settings: Settings) -> QueryResult:
    """Run one stored query for `caller`; raises the XdsError of ITI TF-2a 3.18.4.1.3 on failure."""
    handler = handler_for(query.query_id)
    if handler is None:
        raise UnknownStoredQuery(f"stored query {query.query_id} is not supported", query.query_id)
    if query.return_type not in RETURN_TYPES:
        raise RegistryMetadataError(f"returnType {query.return_type!r} is neither ObjectRef nor LeafClass",
                                    "ResponseOption")
    params = Parameters(handler.parameters, query.parameters)
    for param in handler.parameters:   # local patient ids to the affinity domain's; unknown: XDSUnknownPatientId
        if param.kind is Kind.PATIENT_ID:
            params.map_values(param.name, partial(resolve_patient, session, caller.organisation_id,
                                                  settings=settings, location=param.name))
    ids = handler.run(session, params, Visibility(caller.organisation_id), settings.max_query_results)
    if query.return_type == ReturnType.OBJECT_REF.value:
        return QueryResult(query.return_type, refs=ids)
    return QueryResult(query.return_type, objects=load_objects(session, ids))


def load_objects(session: Session, ids: list[str]) -> list[AnyObject]:
    """The model objects of `ids`, in that order (only the columns they are rebuilt from)."""
    if not ids:
        return []
    rows = {ident: columns for ident, *columns in session.execute(
        select(*OBJECT_COLUMNS).where(RegistryObjectRow.id.in_(ids)))}
    return [object_from_columns(*rows[i]) for i in ids if i in rows]
