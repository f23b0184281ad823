"""The Document Registry actor at POST /xds/registry: ITI-42 and ITI-18 over SOAP 1.2."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, Response
from lxml import etree
from sqlalchemy.orm import Session

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails, current_details
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.errors import UnknownPatientId, XdsError
from hub.federation import peers as federation
from hub.federation.initiating import ask_peers, merge_answers, outgoing_query, record_peer_queries
from hub.security.identity import Caller
from hub.soap.endpoint import SoapOperation, handle_soap
from hub.soap.envelope import SoapRequest
from registry.ebrim import (
    parse_adhoc_query_request,
    parse_submit_objects_request,
    render_adhoc_query_response,
    render_registry_response,
)
from registry.model import StoredQuery, SubmitObjectsRequest
from registry.transactions.iti18_query import QueryResult, run_stored_query
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import (
    ACTION_REGISTER,
    ACTION_REGISTER_RESPONSE,
    ACTION_STORED_QUERY,
    ACTION_STORED_QUERY_RESPONSE,
    ResponseStatus,
    ReturnType,
)

blueprint = Blueprint("registry", __name__)


def _register(caller: Caller, session: Session, soap: SoapRequest) -> etree._Element:
    submission = parse_submit_objects_request(soap.body)
    describe_submission(submission)
    register_document_set(session, submission, caller, get_settings())
    return render_registry_response(ResponseStatus.SUCCESS, [])


def read_query(soap: SoapRequest) -> StoredQuery:
    """The AdhocQueryRequest of `soap` (ITI-18, ITI-38), what its audit record names noted."""
    details = current_details()
    details.query_xml = etree.tostring(soap.body)
    query = parse_adhoc_query_request(soap.body)
    details.query_id, details.home_community_id = query.query_id, query.home
    details.patient_id = queried_patient(query)
    return query


def _query(caller: Caller, session: Session, soap: SoapRequest) -> etree._Element:
    query = read_query(soap)
    details = current_details()
    settings = get_settings()
    peers = federation.peers_to_ask(session, settings, query.home)
    result = QueryResult(query.return_type)
    if not (peers and query.home):      # a query naming one other community goes there only
        try:
            result = run_stored_query(session, query, caller, settings)
        except UnknownPatientId:
            if not peers:
                raise                    # unknown here, but the peers may know the patient
    outgoing = outgoing_query(session, query, caller.organisation_id) if peers else None
    session.commit()  # read-only: end the transaction (and SQLite's gate) before rendering and asking peers
    response = render_result(result)
    if outgoing is not None:   # the initiating gateway (XCA): the peers asked too
        answers = ask_peers(peers, outgoing, settings.peer_timeout_seconds)
        record_peer_queries(session, answers, query.query_id, details.query_xml or b"", details.patient_id)
        response = merge_answers(response, settings.home_community_id, answers)
    return response


def render_result(result: QueryResult, home: str | None = None) -> etree._Element:
    """A successful AdhocQueryResponse of the result's LeafClass objects or ObjectRefs, `home` on each when set."""
    if result.return_type == ReturnType.OBJECT_REF.value:
        return render_adhoc_query_response(ResponseStatus.SUCCESS, None, result.refs, [], home=home)
    return render_adhoc_query_response(ResponseStatus.SUCCESS, result.objects, None, [], home=home)


def describe_submission(submission: SubmitObjectsRequest) -> None:
    """The submission set and patient of a submission, for its audit record."""
    details = current_details()
    for package in submission.submission_sets:
        details.submission_set_uid, details.patient_id = package.unique_id, package.patient_id
    if details.patient_id is None and submission.document_entries:
        details.patient_id = submission.document_entries[0].patient_id


def queried_patient(query: StoredQuery) -> str | None:
    for name in ("$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId", "$XDSFolderPatientId", "$patientId"):
        for values in query.parameters.get(name, []):
            for value in values:
                return value.strip().strip("()").strip().strip("'") or None
    return None


def _query_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                 source: str, description: str | None) -> AuditEvent:
    return events.stored_query(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                               query_id=details.query_id, query_xml=details.query_xml,
                               patient_id=details.patient_id, home_community_id=details.home_community_id,
                               description=description)


def _register_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                    source: str, description: str | None) -> AuditEvent:
    return events.register(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                           submission_set_uid=details.submission_set_uid, patient_id=details.patient_id,
                           description=description)


def _register_errors(errors: list[XdsError]) -> etree._Element:
    return render_registry_response(ResponseStatus.FAILURE, errors)


def _query_errors(errors: list[XdsError]) -> etree._Element:
    return render_adhoc_query_response(ResponseStatus.FAILURE, None, None, errors)


OPERATIONS = {
    op.action: op
    for op in (
        SoapOperation("ITI-42", ACTION_REGISTER, ACTION_REGISTER_RESPONSE, "xds:register",
                      _register, _register_errors, _register_audit),
        SoapOperation("ITI-18", ACTION_STORED_QUERY, ACTION_STORED_QUERY_RESPONSE, "xds:query",
                      _query, _query_errors, _query_audit),
    )
}


@blueprint.post("/xds/registry")
def registry_endpoint() -> Response:
    return handle_soap(OPERATIONS)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
