"""The Document Repository and Imaging Document Source actors over SOAP 1.2 + MTOM/XOP.

POST /xds/repository: ITI-41 / RAD-68 Provide and Register, ITI-43 Retrieve Document Set.
POST /xds/imaging:    RAD-69 Retrieve Imaging Document Set.
Retrieve answers stream each document from the blob store as an MTOM part;
documents of another repository of the affinity domain (`[repositories]` in
hub.toml) are fetched from there (`repository.forwarding`) and streamed on.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import Blueprint, Flask, Response, current_app
from lxml import etree
from sqlalchemy.orm import Session

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails, current_details
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.audit.web import record_transaction
from hub.errors import XdsError
from hub.security.identity import Caller
from hub.soap.endpoint import SoapOperation, handle_soap
from hub.soap.envelope import SoapRequest
from hub.soap.http import SoapReply
from hub.soap.mtom import OutgoingPart
from registry.ebrim import render_registry_response
from registry.views import describe_submission
from registry.vocabulary import ResponseStatus
from repository.blobstore import BlobStore, open_blob_store
from repository.forwarding import Forwarder, community_routes
from repository.imaging_entries import is_manifest_entry
from repository.model import RetrieveResult
from repository.registration import Registry, registry_for
from repository.transactions.iti41_provide import provide_and_register
from repository.transactions.iti43_retrieve import retrieve_documents
from repository.transactions.rad69_retrieve_imaging import retrieve_imaging
from repository.vocabulary import (
    ACTION_PROVIDE,
    ACTION_PROVIDE_RESPONSE,
    ACTION_RETRIEVE,
    ACTION_RETRIEVE_IMAGING,
    ACTION_RETRIEVE_IMAGING_RESPONSE,
    ACTION_RETRIEVE_RESPONSE,
)
from repository.xdsb import (
    parse_imaging_request,
    parse_provide_request,
    parse_retrieve_request,
    render_retrieve_failure,
    render_retrieve_response,
)

blueprint = Blueprint("repository", __name__)
STORE_KEY = "xdshub.blobstore"
REGISTRY_KEY = "xdshub.registry"
FORWARDER_KEY = "xdshub.forwarder"


def blob_store() -> BlobStore:
    return current_app.extensions[STORE_KEY]  # type: ignore[no-any-return]


def registry() -> Registry:
    return current_app.extensions[REGISTRY_KEY]  # type: ignore[no-any-return]


def forwarder() -> Forwarder:
    """Where ITI-43 / RAD-69 for the other repositories of the affinity domain go."""
    return current_app.extensions[FORWARDER_KEY]  # type: ignore[no-any-return]


def _provide(caller: Caller, session: Session, soap: SoapRequest) -> etree._Element:
    request = parse_provide_request(soap.body)
    describe_submission(request.submission)
    details = current_details()
    details.transaction = "RAD-68" if any(is_manifest_entry(e) for e in request.submission.document_entries) \
        else "ITI-41"
    provide_and_register(session, blob_store(), registry(), request, soap.attachments, caller, get_settings(),
                         before_commit=lambda s: record_transaction(s, _provide_audit, caller, Outcome.SUCCESS))
    return render_registry_response(ResponseStatus.SUCCESS, [])


def _provide_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                   source: str, description: str | None) -> AuditEvent:
    return events.provide(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                          submission_set_uid=details.submission_set_uid, patient_id=details.patient_id,
                          transaction=details.transaction or "ITI-41", description=description)


def _retrieve_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                    source: str, description: str | None) -> AuditEvent:
    return events.retrieve(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                           documents=details.documents, patient_id=details.patient_id, description=description)


def _imaging_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime,
                   source: str, description: str | None) -> AuditEvent:
    return events.retrieve_imaging(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                                   studies=details.studies, patient_id=details.patient_id, description=description)


def describe_retrieve(result: RetrieveResult) -> None:
    """What the audit record of a retrieve names: the documents answered, or for RAD-69 the studies."""
    details = current_details()
    details.documents = [(d.document_unique_id, d.repository_unique_id, d.home_community_id)
                         for d in result.documents]
    studies: dict[str, list[tuple[str, str]]] = {}
    for document in result.documents:
        details.patient_id = details.patient_id or document.patient_id
        if document.study_instance_uid:
            studies.setdefault(document.study_instance_uid, []).append(
                (document.sop_class_uid or "", document.document_unique_id))
    details.studies = list(studies.items())
    if result.status != ResponseStatus.SUCCESS:
        details.outcome = int(Outcome.MINOR_FAILURE)


def retrieve_reply(result: RetrieveResult) -> SoapReply:
    content_ids = [f"document{i}.{uuid.uuid4().hex}@xdshub" for i in range(len(result.documents))]
    parts = [OutgoingPart(cid, doc.mime_type, doc.size, doc.open)
             for cid, doc in zip(content_ids, result.documents, strict=True)]
    return SoapReply(render_retrieve_response(result, content_ids), parts, on_close=result.release)


def _routed(session: Session) -> Forwarder:
    """The forwarder, also routing to the peer communities (XCA) by HomeCommunityId."""
    settings = get_settings()
    return forwarder().with_communities(community_routes(session, settings))


def _retrieve(caller: Caller, session: Session, soap: SoapRequest) -> SoapReply:
    result = retrieve_documents(session, blob_store(), parse_retrieve_request(soap.body), caller, get_settings(),
                                _routed(session))
    describe_retrieve(result)
    return retrieve_reply(result)


def _retrieve_imaging(caller: Caller, session: Session, soap: SoapRequest) -> SoapReply:
    result = retrieve_imaging(session, blob_store(), parse_imaging_request(soap.body), caller, get_settings(),
                              _routed(session))
    describe_retrieve(result)
    return retrieve_reply(result)


def _provide_errors(errors: list[XdsError]) -> etree._Element:
    return render_registry_response(ResponseStatus.FAILURE, errors)


REPOSITORY_OPERATIONS = {
    op.action: op
    for op in (
        SoapOperation("ITI-41", ACTION_PROVIDE, ACTION_PROVIDE_RESPONSE, "xds:register", _provide, _provide_errors,
                      _provide_audit),
        SoapOperation("ITI-43", ACTION_RETRIEVE, ACTION_RETRIEVE_RESPONSE, "xds:retrieve", _retrieve,
                      render_retrieve_failure, _retrieve_audit),
    )
}
IMAGING_OPERATIONS = {
    ACTION_RETRIEVE_IMAGING: SoapOperation("RAD-69", ACTION_RETRIEVE_IMAGING, ACTION_RETRIEVE_IMAGING_RESPONSE,
                                           "xds:retrieve", _retrieve_imaging, render_retrieve_failure,
                                           _imaging_audit),
}


@blueprint.post("/xds/repository")
def repository_endpoint() -> Response:
    return handle_soap(REPOSITORY_OPERATIONS, max_total_bytes=get_settings().max_upload_bytes)


@blueprint.post("/xds/imaging")
def imaging_endpoint() -> Response:
    return handle_soap(IMAGING_OPERATIONS)


def init_app(app: Flask) -> None:
    settings = app.config["XDSHUB_SETTINGS"]
    (settings.data_dir / "spool").mkdir(parents=True, exist_ok=True)   # MTOM attachments, transcoded copies
    app.extensions[STORE_KEY] = open_blob_store(settings.storage_url)
    app.extensions[REGISTRY_KEY] = registry_for(settings)
    app.extensions[FORWARDER_KEY] = Forwarder.from_settings(settings)   # RouteError on a malformed [repositories]
    app.register_blueprint(blueprint)
