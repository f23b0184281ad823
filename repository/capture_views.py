"""`POST /api/captures`: a non-DICOM file from a camera, scope or point-of-care device, stored as DICOM.

multipart/form-data with the file in field `file` and the metadata fields
`patient_id` (required), `patient_name`, `birth_date`, `body_part`,
`department`, `device`, `accession` (DESIGN.md); the file's type is its part's
Content-Type, else its file name's extension, and must match its magic bytes
(`repository.capture`). Scope `dicomweb:write`: a capture is a store of a new
DICOM instance, as STOW-RS is.

The body may be as large as `max_upload_bytes` (videos): certificate and
token are verified before the body is read, and werkzeug spools file parts to
temporary files, so memory stays bounded. Answers: 201 with the study, series
and SOP instance UIDs; 400 (bad metadata, missing file, content not what its
type says), 413 (too large), 415 (a type or variant the hub does not capture)
as RFC 9457 problems, nothing stored. The Import audit record (DICOM 110107)
commits in the same transaction as the instance; a refused call gets a
Security Alert, a failed one the Import record with its failure outcome.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import BinaryIO, cast

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails, current_details
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.audit.web import record_failure, record_refusal, record_transaction
from hub.db import get_session
from hub.errors import AuthenticationFault, AuthorizationFault
from hub.ops import observe_transaction
from hub.problems import problem
from hub.security.protect import authenticate
from repository.blobstore import BlobTooLarge
from repository.capture import CaptureError, capture, parse_metadata
from repository.dicomfile import InvalidDicom
from repository.ingest import Sender
from repository.views import blob_store

blueprint = Blueprint("captures", __name__)
SCOPE = "dicomweb:write"
TRANSACTION = "capture"


def _audit(details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source: str,
           description: str | None) -> AuditEvent:
    return events.instances_imported(sender=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                                     studies=details.studies, patient_id=details.patient_id,
                                     description=description)


def _too_large(limit: int) -> Response:
    return problem(413, "Content Too Large", f"a capture may be at most {limit} bytes")


@blueprint.post("/api/captures")
def post_capture() -> Response:
    started, outcome = time.perf_counter(), "error"
    settings = get_settings()
    try:
        caller = authenticate(SCOPE)
    except (AuthenticationFault, AuthorizationFault) as fault:
        record_refusal(fault.reason, TRANSACTION)
        observe_transaction(TRANSACTION, "fault", time.perf_counter() - started)
        raise
    limit = settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        record_failure(_audit, caller, "the capture is too large")
        return _too_large(limit)
    session = get_session()
    try:
        try:
            upload = request.files.get("file")
            fields = dict(request.form.items())
        except RequestEntityTooLarge:
            record_failure(_audit, caller, "the capture is too large")
            return _too_large(limit)
        if upload is None:
            raise CaptureError("the file is missing: send it as the multipart field 'file'")
        metadata = parse_metadata(fields)
        current_details().transaction = TRANSACTION
        result = capture(session, blob_store(), cast(BinaryIO, upload.stream), metadata,
                         Sender(caller.organisation_id, caller.organisation_oid),
                         media_type=upload.content_type, filename=upload.filename,
                         spool_dir=settings.data_dir / "spool")
        instance = result.instance
        details = current_details()
        details.patient_id = instance.patient_id
        details.studies = [(instance.study_instance_uid, [(instance.sop_class_uid, instance.sop_instance_uid)])]
        record_transaction(session, _audit, caller, Outcome.SUCCESS)
        session.commit()
        outcome = "success"
    except (CaptureError, InvalidDicom) as exc:
        session.rollback()
        record_failure(_audit, caller, str(exc))
        status = exc.status if isinstance(exc, CaptureError) else 400
        return problem(status, "Unsupported Media Type" if status == 415 else "Bad Request", str(exc))
    except BlobTooLarge:
        session.rollback()
        record_failure(_audit, caller, "the capture is too large")
        return _too_large(limit)
    except Exception:
        session.rollback()
        record_failure(_audit, caller, "internal error", Outcome.MAJOR_FAILURE)
        raise
    finally:
        observe_transaction(TRANSACTION, outcome, time.perf_counter() - started)
    response = jsonify({
        "study_instance_uid": instance.study_instance_uid,
        "series_instance_uid": instance.series_instance_uid,
        "sop_instance_uid": instance.sop_instance_uid,
        "sop_class_uid": instance.sop_class_uid,
        "transfer_syntax_uid": instance.transfer_syntax_uid,
        "patient_id": instance.patient_id,
    })
    response.status_code = 201
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
