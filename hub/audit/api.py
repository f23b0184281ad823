"""`GET /api/audit` and `GET /api/audit/<seq>`: the audit trail as JSON, for callers with scope audit:read.

An organisation sees the records of its own calls (its OID as the requesting
organisation): what it asked, what it received, what it was refused. Query
parameters: patient_id, organisation (only the caller's own), user, event_type,
event_id, outcome (0, 4, 8, 12), study_uid, since and until (ISO 8601), limit
(at most 500) and cursor (from the previous page's `next`). Unknown or
malformed parameters are a 400 problem document, not silently ignored.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, url_for

from hub.audit.query import AuditFilter, BadParameter, criteria_from_args, search
from hub.audit.tables import AuditRecord
from hub.audit.web import record_audit_read
from hub.clock import as_utc
from hub.db import get_session
from hub.problems import problem
from hub.security.identity import Caller
from hub.security.protect import authenticate

blueprint = Blueprint("audit_api", __name__)
SCOPE = "audit:read"
PARAMETERS = frozenset({"patient_id", "organisation", "user", "event_type", "event_id", "outcome", "study_uid",
                        "since", "until", "limit", "cursor"})


def _limit(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise BadParameter(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _criteria(caller: Caller) -> AuditFilter:
    unknown = sorted(set(request.args) - PARAMETERS)
    if unknown:
        raise BadParameter(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(PARAMETERS))}")
    organisation = request.args.get("organisation")
    if organisation is not None and organisation != caller.organisation_oid:
        raise PermissionError("an organisation may read only the records of its own calls")
    return criteria_from_args(request.args, organisation_oid=caller.organisation_oid)


def as_json(record: AuditRecord, message: bool = False) -> dict[str, Any]:
    recorded = as_utc(record.recorded_at)
    body: dict[str, Any] = {
        "seq": record.seq, "recorded_at": recorded.isoformat(), "event_id": record.event_id,
        "event_type": record.event_type, "action": record.action, "outcome": record.outcome,
        "organisation": record.organisation_oid, "user": record.user_id, "client_address": record.client_address,
        "patient_id": record.patient_id, "study_uid": record.study_uid, "hash": record.hash,
    }
    if message:
        body["message"] = record.message
    return body


@blueprint.get("/api/audit")
def list_records() -> Response:
    caller = authenticate(SCOPE)
    try:
        criteria = _criteria(caller)
        page = search(get_session(), criteria, _limit("limit") or 100, _limit("cursor"))
    except BadParameter as exc:
        return problem(400, "Bad Request", str(exc))
    except PermissionError as exc:
        return problem(403, "Forbidden", str(exc))
    records = [as_json(r) for r in page.records]
    record_audit_read(caller)
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "cursor"}
    next_url = url_for("audit_api.list_records", cursor=page.next_cursor, **args) if page.next_cursor else None
    return jsonify({"records": records, "next": next_url})


@blueprint.get("/api/audit/<int:seq>")
def one_record(seq: int) -> Response:
    caller = authenticate(SCOPE)
    record = get_session().get(AuditRecord, seq)
    if record is None or record.organisation_oid != caller.organisation_oid:
        return problem(404, "Not Found", f"no audit record {seq} of this organisation")
    body = as_json(record, message=True)
    record_audit_read(caller)
    return jsonify(body)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
