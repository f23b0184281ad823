"""The XCA / XCA-I Responding Gateway: other communities query and retrieve from this hub.

POST /xca/query     ITI-38 Cross Gateway Query (ITI TF-2b 3.38)
POST /xca/retrieve  ITI-39 Cross Gateway Retrieve (ITI TF-2b 3.39),
                    RAD-75 Cross Gateway Retrieve Imaging Document Set (RAD TF-3 4.75)

A thin layer over the registry's ITI-18 and the repository's ITI-43 / RAD-69:
the same messages, parsers, transactions and confidentiality rules, answered
from this hub's own registry and repository only (never passed on to this
hub's peers, so two federated hubs cannot ask each other in a loop), under the
same mutual TLS, OAuth and scope checks as /xds/*. A peer hub calls with the
client certificate it was issued here (`xdshub org add`) and sees what that
organisation may see. What differs is the community:

- ITI-38: every ExtrinsicObject, RegistryPackage, Association and ObjectRef of
  the answer carries `home` = this hub's homeCommunityId (ITI TF-2b
  3.38.4.1.3); an AdhocQuery whose `home` names another community is answered
  XDSUnknownCommunity. `home` is optional for queries by patient id and
  accepted when absent.
- ITI-39 and RAD-75: each DocumentRequest names its community in
  HomeCommunityId (ITI TF-2b 3.39.4.1.2; RAD-75 carries it in the DocumentRequests
  of the RAD-69 message, RAD TF-3 4.75.4.1.2). Another community's document is
  XDSUnknownCommunity, a request without one XDSMissingHomeCommunityId, each for
  that document alone (PartialSuccess when others are answered); every
  DocumentResponse carries HomeCommunityId.

Each transaction is audited as the registry / repository audits its XDS
counterpart, with its own event type code (ITI TF-2b 3.38.5.1.2, 3.39.5.1.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from flask import Blueprint, Flask, Response
from lxml import etree
from sqlalchemy.orm import Session

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.errors import MissingHomeCommunityId, UnknownCommunity, XdsError
from hub.federation.xca import (
    ACTION_CROSS_GATEWAY_QUERY,
    ACTION_CROSS_GATEWAY_QUERY_RESPONSE,
    ACTION_CROSS_GATEWAY_RETRIEVE,
    ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
    ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING_RESPONSE,
    ACTION_CROSS_GATEWAY_RETRIEVE_RESPONSE,
    QUERY_PATH,
    RETRIEVE_PATH,
)
from hub.security.identity import Caller
from hub.soap.endpoint import SoapOperation, handle_soap
from hub.soap.envelope import SoapRequest
from hub.soap.http import SoapReply
from registry.ebrim import render_adhoc_query_response
from registry.transactions.iti18_query import run_stored_query
from registry.views import read_query, render_result
from registry.vocabulary import ResponseStatus
from repository.forwarding import select_documents
from repository.model import DocumentRequest, ImagingRequest, RetrieveResult
from repository.transactions.iti43_retrieve import retrieve_documents
from repository.transactions.rad69_retrieve_imaging import retrieve_imaging
from repository.views import blob_store, describe_retrieve, forwarder, retrieve_reply
from repository.xdsb import parse_imaging_request, parse_retrieve_request, render_retrieve_failure

blueprint = Blueprint("xca_responding", __name__)


# -- ITI-38 -------------------------------------------------------------------------------------------------------

def _query(caller: Caller, session: Session, soap: SoapRequest) -> etree._Element:
    home = get_settings().home_community_id
    query = read_query(soap)
    if query.home and query.home != home:
        raise UnknownCommunity(f"homeCommunityId {query.home} is not this community ({home})", query.home)
    result = run_stored_query(session, query, caller, get_settings())
    session.commit()  # read-only: end the transaction (and SQLite's gate) before rendering
    return render_result(result, home)


def _query_errors(errors: list[XdsError]) -> etree._Element:
    return render_adhoc_query_response(ResponseStatus.FAILURE, None, None, errors)


def _query_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                 source: str, description: str | None) -> AuditEvent:
    return events.stored_query(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                               query_id=details.query_id, query_xml=details.query_xml,
                               patient_id=details.patient_id, home_community_id=details.home_community_id,
                               description=description, transaction="ITI-38")


# -- ITI-39 and RAD-75 --------------------------------------------------------------------------------------------

def _community_error(request: DocumentRequest, home: str) -> XdsError | None:
    """Why this gateway does not answer `request`, or None when the request is for this community."""
    uid = request.document_unique_id
    if not request.home_community_id:
        return MissingHomeCommunityId(f"DocumentRequest for {uid} names no HomeCommunityId (ITI TF-2b 3.39.4.1.2)",
                                      uid)
    if request.home_community_id != home:
        return UnknownCommunity(f"HomeCommunityId {request.home_community_id} of document {uid} is not this "
                                f"community ({home})", uid)
    return None


def _answered(result: RetrieveResult, refused: Iterable[XdsError], home: str) -> RetrieveResult:
    """`result` with the requests refused for their community added, HomeCommunityId on every document."""
    return RetrieveResult([replace(d, home_community_id=home) for d in result.documents],
                          [*refused, *result.errors])


def _retrieve(caller: Caller, session: Session, soap: SoapRequest) -> SoapReply:
    settings = get_settings()
    home = settings.home_community_id
    ours: list[DocumentRequest] = []
    refused: list[XdsError] = []
    for request in parse_retrieve_request(soap.body):
        error = _community_error(request, home)
        if error is None:
            ours.append(request)
        else:
            refused.append(error)
    # the other repositories of this affinity domain are asked too ([repositories]); never other communities
    result = retrieve_documents(session, blob_store(), ours, caller, settings, forwarder()) if ours \
        else RetrieveResult()
    result = _answered(result, refused, home)
    describe_retrieve(result)
    return retrieve_reply(result)


def _local_part(request: ImagingRequest, home: str) -> tuple[ImagingRequest | None, list[XdsError]]:
    """The studies, series and instances of `request` this community answers, and an error for each other one."""
    refused = [error for d in request.documents if (error := _community_error(d, home)) is not None]
    return select_documents(request, lambda d: _community_error(d, home) is None), refused


def _retrieve_imaging(caller: Caller, session: Session, soap: SoapRequest) -> SoapReply:
    settings = get_settings()
    home = settings.home_community_id
    local, refused = _local_part(parse_imaging_request(soap.body), home)
    result = retrieve_imaging(session, blob_store(), local, caller, settings, forwarder()) if local \
        else RetrieveResult()
    result = _answered(result, refused, home)
    describe_retrieve(result)
    return retrieve_reply(result)


def _retrieve_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                    source: str, description: str | None) -> AuditEvent:
    return events.retrieve(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                           documents=details.documents, patient_id=details.patient_id, description=description,
                           transaction="ITI-39")


def _imaging_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                   source: str, description: str | None) -> AuditEvent:
    return events.retrieve_imaging(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                                   studies=details.studies, patient_id=details.patient_id, description=description,
                                   transaction="RAD-75")


QUERY_OPERATIONS = {
    ACTION_CROSS_GATEWAY_QUERY: SoapOperation("ITI-38", ACTION_CROSS_GATEWAY_QUERY,
                                              ACTION_CROSS_GATEWAY_QUERY_RESPONSE, "xds:query", _query,
                                              _query_errors, _query_audit),
}
RETRIEVE_OPERATIONS = {
    op.action: op
    for op in (
        SoapOperation("ITI-39", ACTION_CROSS_GATEWAY_RETRIEVE, ACTION_CROSS_GATEWAY_RETRIEVE_RESPONSE,
                      "xds:retrieve", _retrieve, render_retrieve_failure, _retrieve_audit),
        SoapOperation("RAD-75", ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING, ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING_RESPONSE,
                      "xds:retrieve", _retrieve_imaging, render_retrieve_failure, _imaging_audit),
    )
}


@blueprint.post(QUERY_PATH)
def query_endpoint() -> Response:
    return handle_soap(QUERY_OPERATIONS)


@blueprint.post(RETRIEVE_PATH)
def retrieve_endpoint() -> Response:
    return handle_soap(RETRIEVE_OPERATIONS)


def init_app(app: Flask) -> None:
    """Needs the repository's blob store (repository.views.init_app runs first)."""
    app.register_blueprint(blueprint)
