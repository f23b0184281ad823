"""ITI-18 Registry Stored Query (ITI TF-2a 3.18).

Looks the stored query up by id, parses its parameters, selects the matching
objects the caller may see, and returns them as ObjectRefs or as LeafClass
objects (content loaded only for the objects returned). More matches than
`settings.max_query_results` answer XDSTooManyResults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import UnknownStoredQuery
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import AnyObject, StoredQuery
from registry.queries import HANDLERS, QueryContext, Visibility
from registry.queries.params import Parameters
from registry.store import OBJECT_COLUMNS, object_from_columns
from registry.tables import RegistryObjectRow
from registry.vocabulary import ReturnType


@dataclass
class QueryResult:
    return_type: str
    objects: list[AnyObject] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)


def run_stored_query(session: Session, query: StoredQuery, caller: Caller, settings: Settings) -> QueryResult:
    handler = HANDLERS.get(query.query_id)
    if handler is None:
        raise UnknownStoredQuery(f"stored query {query.query_id} is not supported", query.query_id)
    params = Parameters(handler.parameters, query.parameters)
    context = QueryContext(session, params, Visibility(caller.organisation_id), settings.max_query_results)
    handler.run(context)
    if query.return_type == ReturnType.OBJECT_REF.value:
        return QueryResult(query.return_type, refs=list(context.ids))
    rows = {ident: columns for ident, *columns in session.execute(
        select(*OBJECT_COLUMNS).where(RegistryObjectRow.id.in_(context.ids)))} if context.ids else {}
    return QueryResult(query.return_type,
                       objects=[object_from_columns(*rows[i]) for i in context.ids if i in rows])
