"""The DICOMweb Studies Service over HTTPS under /dicomweb (PS3.18 10): STOW-RS, QIDO-RS, WADO-RS.

Every call is authenticated like the SOAP transactions (client certificate,
certificate-bound token, scope `dicomweb:read` or `dicomweb:write`, refusals
recorded as Security Alerts) and writes one audit record: RAD-108 in the same
database transaction as the instances it stored, RAD-107 for each retrieve,
RAD-129 for each search. Failures are RFC 9457 problem documents with the
status PS3.18 gives (400, 404, 406, 409, 413, 415); nothing answers with a
trace. The views parse, call one service, and answer; multipart answers
stream from the blob store after the database session is done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails, current_details
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.audit.web import EventBuilder, record_failure, record_refusal, record_transaction
from hub.db import begin_read_only, get_session
from hub.errors import AuthenticationFault, AuthorizationFault, PayloadTooLarge, SoapFault
from hub.ops import observe_transaction
from hub.problems import problem
from hub.security.identity import Caller
from hub.security.protect import authenticate
from hub.soap.mtom import iter_parts, parse_content_type
from repository.blobstore import BlobStore
from repository.dicomfile import is_valid_uid
from repository.dicomweb import qido, render, stow, wado
from repository.dicomweb.codec import (
    MediaRange,
    Part,
    multipart_chunks,
    multipart_content_type,
    multipart_length,
    new_boundary,
    parse_accept,
)
from repository.dicomweb.dicomjson import bulk_value, instance_metadata
from repository.dicomweb.errors import BadRequest, DicomwebError, NotAcceptable, UnsupportedMediaType
from repository.ingest import Sender
from repository.render_cache import cached_render, shared_cache
from repository.views import blob_store

log = logging.getLogger(__name__)
blueprint = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

READ, WRITE = "dicomweb:read", "dicomweb:write"
DICOM, DICOM_JSON, OCTETS = "application/dicom", "application/dicom+json", "application/octet-stream"
Handler = Callable[[Caller, Session], Response]


# -- the frame every call runs in ---------------------------------------------------------------------------

def _base_url() -> str:
    return f"{get_settings().base_url.rstrip('/')}/dicomweb"


def _rollback() -> None:
    session = g.get("db_session")
    if session is not None:
        session.rollback()


def _run(transaction: str, scope: str, audit: EventBuilder, handle: Handler, read_only: bool = False) -> Response:
    """Authenticate, run the handler in one database transaction with its audit record, map the errors.

    `read_only` (QIDO, WADO): the handler reads in a read-only transaction
    (`hub.db.begin_read_only`), ended before the audit record is written in
    a transaction of its own: a read changes nothing the record must commit
    with, and concurrent reads then never wait for one another.
    """
    started = time.perf_counter()
    outcome = "fault"
    g.transaction = transaction
    if read_only:
        begin_read_only(get_session())
    try:
        try:
            caller = authenticate(scope)
        except (AuthenticationFault, AuthorizationFault) as fault:
            record_refusal(fault.reason, transaction)
            raise
        g.caller = caller
        try:
            session = get_session()
            response = handle(caller, session)
            if read_only:
                session.commit()
            record_transaction(session, audit, caller, Outcome.SUCCESS)
            session.commit()
            outcome = "success" if response.status_code < 300 else "error"
            return response
        except DicomwebError as exc:
            _rollback()
            outcome = "error"
            record_failure(audit, caller, exc.message)
            return problem(exc.status, exc.title, exc.message)
        except RequestEntityTooLarge:
            _rollback()
            record_failure(audit, caller, "request body too large")
            return problem(413, "Payload Too Large", "the request body exceeds the hub's limit")
        except (AuthenticationFault, AuthorizationFault):
            raise
        except SoapFault as fault:      # the multipart reader: truncated or malformed body (400), too large (413)
            _rollback()
            outcome = "error"
            record_failure(audit, caller, fault.reason)
            return problem(fault.http_status, "Payload Too Large" if fault.http_status == 413 else "Bad Request",
                           fault.reason)
        except Exception:  # translated here, never leaked
            _rollback()
            log.exception("DICOMweb %s failed", transaction)
            record_failure(audit, caller, f"internal error, request id {g.get('request_id', 'unknown')}",
                           Outcome.MAJOR_FAILURE)
            return problem(500, "Internal Server Error", f"request id {g.get('request_id', 'unknown')}")
    finally:
        observe_transaction(transaction, outcome, time.perf_counter() - started)


def _store_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, at: datetime, source: str,
                 description: str | None) -> AuditEvent:
    return events.dicomweb_store(requestor=requestor, hub=hub, outcome=outcome, time=at, source_id=source,
                                 studies=details.studies, patient_id=details.patient_id, description=description)


def _retrieve_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, at: datetime,
                    source: str, description: str | None) -> AuditEvent:
    return events.dicomweb_retrieve(requestor=requestor, hub=hub, outcome=outcome, time=at, source_id=source,
                                    studies=details.studies, patient_id=details.patient_id, description=description)


def _query_audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, at: datetime, source: str,
                 description: str | None) -> AuditEvent:
    return events.dicomweb_query(requestor=requestor, hub=hub, outcome=outcome, time=at, source_id=source,
                                 path=request.path, query=request.query_string, description=description)


def _uid(value: str | None, what: str) -> str | None:
    if value is not None and not is_valid_uid(value):
        raise BadRequest(f"{what} {value[:80]!r} is not a valid UID (PS3.5 9.1)")
    return value


def _describe(held: list[wado.Held]) -> None:
    """What the retrieve's audit record names: the patient and the instances by study."""
    details = current_details()
    studies: dict[str, list[tuple[str, str]]] = {}
    for h in held:
        details.patient_id = details.patient_id or h.patient_id
        studies.setdefault(h.study_instance_uid, []).append((h.sop_class_uid, h.sop_instance_uid))
    details.studies = list(studies.items())


def _accepting(ranges: list[MediaRange], media_type: str) -> list[MediaRange]:
    return [r for r in ranges if r.matches(media_type)]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type=DICOM_JSON)


def _require_json() -> None:
    ranges = parse_accept(request.headers.get("Accept"))
    if not (_accepting(ranges, DICOM_JSON) or _accepting(ranges, "application/json")):
        raise NotAcceptable(f"this resource is given as {DICOM_JSON} only (PS3.18 8.7.3)")


# -- STOW-RS ---------------------------------------------------------------------------------------------------

@blueprint.post("/studies")
@blueprint.post("/studies/<study>")
def store(study: str | None = None) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        _uid(study, "Study Instance UID")
        content_type = parse_content_type(request.content_type)
        part_type = content_type.params.get("type", "").lower()
        if content_type.media_type != "multipart/related" or part_type != DICOM:
            raise UnsupportedMediaType(f'STOW-RS takes multipart/related; type="{DICOM}" (PS3.18 10.5.1.2), '
                                       f"not {request.content_type or '(no Content-Type)'}")
        settings = get_settings()
        if request.content_length is not None and request.content_length > settings.max_upload_bytes:
            raise PayloadTooLarge(settings.max_upload_bytes)
        parts = iter_parts(request.stream, content_type.params.get("boundary", ""),
                           max_bytes=settings.max_upload_bytes, spool_dir=settings.data_dir / "spool")
        result = stow.store_instances(session, blob_store(), parts, Sender(caller.organisation_id,
                                                                             caller.organisation_oid), study)
        details = current_details()
        details.studies = [(uid, list(instances)) for uid, instances in result.studies()]
        details.patient_id = next((s.patient_id for s in result.stored), None)
        if result.failed:
            details.outcome = int(Outcome.MINOR_FAILURE)
        return _json(result.response(_base_url(), study), result.status)
    return _run("RAD-108", WRITE, _store_audit, handle)


# -- QIDO-RS ---------------------------------------------------------------------------------------------------

def _search(level: qido.Level, study: str | None = None, series: str | None = None) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        _uid(study, "Study Instance UID")
        _uid(series, "Series Instance UID")
        _require_json()
        query = qido.parse_search(level, list(request.args.items(multi=True)), study, series)
        result = qido.search(session, caller, query, _base_url())
        response = _json(result.items)
        for warning in result.warnings:
            response.headers.add("Warning", warning)
        return response
    return _run("RAD-129", READ, _query_audit, handle, read_only=True)


@blueprint.get("/studies")
def search_studies() -> Response:
    return _search(qido.Level.STUDY)


@blueprint.get("/series")
def search_all_series() -> Response:
    return _search(qido.Level.SERIES)


@blueprint.get("/studies/<study>/series")
def search_series(study: str) -> Response:
    return _search(qido.Level.SERIES, study)


@blueprint.get("/instances")
def search_all_instances() -> Response:
    return _search(qido.Level.INSTANCE)


@blueprint.get("/studies/<study>/instances")
def search_study_instances(study: str) -> Response:
    return _search(qido.Level.INSTANCE, study)


@blueprint.get("/studies/<study>/series/<series>/instances")
def search_instances(study: str, series: str) -> Response:
    return _search(qido.Level.INSTANCE, study, series)


# -- WADO-RS ---------------------------------------------------------------------------------------------------

def _retrieve(handle: Callable[[Caller, Session], Response]) -> Response:
    return _run("RAD-107", READ, _retrieve_audit, handle, read_only=True)


def _held(session: Session, caller: Caller, study: str, series: str | None = None,
          instance: str | None = None) -> list[wado.Held]:
    _uid(study, "Study Instance UID")
    _uid(series, "Series Instance UID")
    _uid(instance, "SOP Instance UID")
    held = wado.find_instances(session, caller, study, series, instance)
    _describe(held)
    return held


def _wanted_syntaxes() -> list[str]:
    """The transfer syntaxes the Accept field admits for application/dicom parts, by preference (PS3.18 8.7.3.5)."""
    wanted: list[str] = []
    for media in parse_accept(request.headers.get("Accept")):
        if not media.matches("multipart/related") or media.params.get("type", DICOM).lower() not in (DICOM, "*/*"):
            continue
        syntax = media.params.get("transfer-syntax") or wado.DEFAULT_SYNTAX
        if syntax not in wanted:
            wanted.append(syntax)
    if not wanted:
        raise NotAcceptable(f'instances are given as multipart/related; type="{DICOM}" (PS3.18 10.4.1.1.1)')
    return wanted


def _instances_response(held: list[wado.Held], store: BlobStore) -> Response:
    wanted = _wanted_syntaxes()
    spool = get_settings().data_dir / "spool"
    parts = []
    for h in held:
        target = wado.choose_syntax(h.transfer_syntax_uid, wanted)
        if target is None:
            raise NotAcceptable(f"instance {h.sop_instance_uid} is stored as {h.transfer_syntax_uid} and cannot be "
                                f"given in {', '.join(wanted)} here")
        parts.append(Part(f"{DICOM}; transfer-syntax={target}", wado.open_instance(store, h, target, spool),
                          location=f"{_base_url()}/studies/{h.study_instance_uid}/series/{h.series_instance_uid}"
                                   f"/instances/{h.sop_instance_uid}",
                          size=h.size if target == h.transfer_syntax_uid and h.size else None))
    boundary = new_boundary()
    response = Response(multipart_chunks(parts, boundary), content_type=multipart_content_type(boundary, DICOM))
    length = multipart_length(parts, boundary)
    if length is not None:        # everything as stored: sizes known, no chunked framing
        response.content_length = length
    return response


@blueprint.get("/studies/<study>")
@blueprint.get("/studies/<study>/series/<series>")
@blueprint.get("/studies/<study>/series/<series>/instances/<instance>")
def retrieve(study: str, series: str | None = None, instance: str | None = None) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        return _instances_response(_held(session, caller, study, series, instance), blob_store())
    return _retrieve(handle)


def _instance_url(h: wado.Held) -> str:
    return (f"{_base_url()}/studies/{h.study_instance_uid}/series/{h.series_instance_uid}"
            f"/instances/{h.sop_instance_uid}")


@blueprint.get("/studies/<study>/metadata")
@blueprint.get("/studies/<study>/series/<series>/metadata")
@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/metadata")
def metadata(study: str, series: str | None = None, instance: str | None = None) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        held = _held(session, caller, study, series, instance)
        _require_json()
        store = blob_store()
        bulk = {h.sop_instance_uid: f"{_instance_url(h)}/bulkdata" for h in held}   # the app context ends first

        def body() -> Iterator[bytes]:   # one instance's header in memory at a time
            yield b"["
            for n, h in enumerate(held):
                item = instance_metadata(wado.read_header(store, h), bulk[h.sop_instance_uid])
                yield (b"," if n else b"") + json.dumps(item, separators=(",", ":")).encode()
            yield b"]"
        return Response(body(), content_type=DICOM_JSON)
    return _retrieve(handle)


def _octet_ranges() -> None:
    for media in parse_accept(request.headers.get("Accept")):
        if media.matches(OCTETS) and media.media_type != "*/*":
            syntax = media.params.get("transfer-syntax", "*")
        elif media.matches("multipart/related") and media.params.get("type", OCTETS).lower() in (OCTETS, "*/*"):
            syntax = media.params.get("transfer-syntax", "*")
        else:
            continue
        if syntax in ("*", wado.DEFAULT_SYNTAX):
            return
    raise NotAcceptable(f'frames and bulk data are given as multipart/related; type="{OCTETS}", '
                        f"uncompressed (transfer-syntax={wado.DEFAULT_SYNTAX})")


def _octets_response(chunks: list[bytes], location: str) -> Response:
    boundary = new_boundary()
    part_type = f"{OCTETS}; transfer-syntax={wado.DEFAULT_SYNTAX}"
    parts = [Part(part_type, data=chunk, location=location) for chunk in chunks]
    return Response(multipart_chunks(parts, boundary),
                    content_type=multipart_content_type(boundary, OCTETS, wado.DEFAULT_SYNTAX))


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frame_list>")
def retrieve_frames(study: str, series: str, instance: str, frame_list: str) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        (held,) = _held(session, caller, study, series, instance)
        _octet_ranges()
        numbers = wado.frame_numbers(frame_list, held.frame_count)
        data = wado.frames(wado.read_full(blob_store(), held), numbers)
        return _octets_response(data, request.base_url)
    return _retrieve(handle)


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/bulkdata/<path:path>")
def retrieve_bulkdata(study: str, series: str, instance: str, path: str) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        (held,) = _held(session, caller, study, series, instance)
        _octet_ranges()
        return _octets_response([bulk_value(wado.read_full(blob_store(), held), path)], request.base_url)
    return _retrieve(handle)


def _rendered_type() -> str:
    for media in parse_accept(request.headers.get("Accept")):
        for media_type in render.RENDERED_TYPES:
            if media.matches(media_type):
                return media_type
    raise NotAcceptable(f"rendered images are given as {' or '.join(render.RENDERED_TYPES)} (PS3.18 8.7.4)")


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/rendered")
@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/frames/<int:frame>/rendered")
def retrieve_rendered(study: str, series: str, instance: str, frame: int = 1) -> Response:
    def handle(caller: Caller, session: Session) -> Response:
        (held,) = _held(session, caller, study, series, instance)
        media_type = _rendered_type()
        options = render.parse_render_options(request.args.to_dict(), media_type)
        (number,) = wado.frame_numbers(str(frame), held.frame_count)
        return Response(rendered_frame(held, number, options).image, content_type=media_type)
    return _retrieve(handle)


def rendered_frame(held: wado.Held, number: int, options: render.RenderOptions) -> render.Rendered:
    """Frame `number` of the instance rendered, from the render cache the viewer shares when rendered before
    (keyed by the stored bytes' digest)."""
    cache = shared_cache(get_settings().data_dir / "cache" / "rendered")
    return cached_render(cache, held.sha256, number, options, lambda: wado.read_full(blob_store(), held))


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
