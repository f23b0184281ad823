"""`GET /fhir/AuditEvent`: the audit trail as FHIR R4 AuditEvent resources (IHE ITI-81, RESTful ATNA).

Each stored DICOM audit message (PS3.15 A.5) is translated field by field,
following the DICOM-to-FHIR mapping of IHE RESTful ATNA: EventID → type,
EventTypeCode → subtype, EventActionCode → action, outcome code 0/4/8/12,
ActiveParticipant → agent (UserIsRequestor → requestor, NetworkAccessPoint
→ network), AuditSourceIdentification → source, ParticipantObject → entity
(ID, type, role, query and details as base64).

Search parameters (ITI TF-2c 3.81.4.1.2): date (with ge, gt, le, lt, eq
prefixes; repeatable), patient, entity (an entity identifier), agent (an
agent identifier: the organisation OID), outcome, type (the event id, as
code or system|code), subtype (the transaction), _count, and page (the cursor
of the next link). The answer is a searchset Bundle, newest first. The same
rule as /api/audit applies: an organisation sees the records of its own calls.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from lxml import etree
from sqlalchemy import or_, select

from hub.audit.tables import AuditRecord
from hub.audit.web import record_audit_read
from hub.clock import as_utc, parse_iso
from hub.db import get_session
from hub.problems import problem
from hub.security.protect import authenticate
from hub.soap.envelope import hardened_parser

blueprint = Blueprint("audit_fhir", __name__)
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE_SYSTEM = "urn:ihe:event-type-code"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
FHIR_JSON = "application/fhir+json"
PARAMETERS = frozenset({"date", "patient", "entity", "agent", "outcome", "type", "subtype", "_count", "page"})
PREFIXES = {"ge": "__ge__", "gt": "__gt__", "le": "__le__", "lt": "__lt__", "eq": "__eq__"}


class BadSearch(ValueError):
    pass


def _coding(element: etree._Element | None, default_system: str | None = None) -> dict[str, str] | None:
    if element is None:
        return None
    system = element.get("codeSystemName") or default_system or ""
    coding = {"system": DCM if system == "DCM" else system, "code": element.get("csd-code", "")}
    if element.get("originalText"):
        coding["display"] = element.get("originalText", "")
    return coding


def _agent(element: etree._Element) -> dict[str, Any]:
    agent: dict[str, Any] = {"who": {"identifier": {"value": element.get("UserID", "")}},
                             "requestor": element.get("UserIsRequestor", "true") == "true"}
    role = _coding(element.find("RoleIDCode"))
    if role:
        agent["type"] = {"coding": [role]}
    for attribute, field in (("AlternativeUserID", "altId"), ("UserName", "name")):
        if element.get(attribute):
            agent[field] = element.get(attribute)
    if element.get("NetworkAccessPointID"):
        agent["network"] = {"address": element.get("NetworkAccessPointID"),
                            "type": element.get("NetworkAccessPointTypeCode", "2")}
    return agent


def _entity(element: etree._Element) -> dict[str, Any]:
    entity: dict[str, Any] = {"what": {"identifier": {"value": element.get("ParticipantObjectID", "")}}}
    if element.get("ParticipantObjectTypeCode"):
        entity["type"] = {"system": ENTITY_TYPE, "code": element.get("ParticipantObjectTypeCode")}
    if element.get("ParticipantObjectTypeCodeRole"):
        entity["role"] = {"system": OBJECT_ROLE, "code": element.get("ParticipantObjectTypeCodeRole")}
    id_type = _coding(element.find("ParticipantObjectIDTypeCode"))
    if id_type:
        entity["what"]["identifier"]["type"] = {"coding": [id_type]}
    if element.findtext("ParticipantObjectName"):
        entity["name"] = element.findtext("ParticipantObjectName")
    query = element.findtext("ParticipantObjectQuery")
    if query:
        entity["query"] = query.strip()
    details = [{"type": d.get("type", ""), "valueBase64Binary": d.get("value", "")}
               for d in element.iterchildren("ParticipantObjectDetail")]
    if details:
        entity["detail"] = details
    return entity


def audit_event(record: AuditRecord) -> dict[str, Any]:
    """The FHIR R4 AuditEvent of one stored record."""
    message = etree.fromstring(record.message.encode("utf-8"), hardened_parser())
    identification = message.find("EventIdentification")
    assert identification is not None
    recorded = as_utc(record.recorded_at)
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": str(record.seq),
        "type": _coding(identification.find("EventID")),
        "action": identification.get("EventActionCode", "E"),
        "recorded": recorded.isoformat(),
        "outcome": identification.get("EventOutcomeIndicator", str(record.outcome)),
        "agent": [_agent(p) for p in message.iterchildren("ActiveParticipant")],
    }
    subtypes = [c for c in (_coding(t, EVENT_TYPE_SYSTEM) for t in identification.iterchildren("EventTypeCode")) if c]
    for coding in subtypes:
        if coding["system"] == "IHE Transactions":
            coding["system"] = EVENT_TYPE_SYSTEM
    if subtypes:
        resource["subtype"] = subtypes
    description = identification.findtext("EventOutcomeDescription")
    if description:
        resource["outcomeDesc"] = description
    source = message.find("AuditSourceIdentification")
    source_id = source.get("AuditSourceID", "") if source is not None else ""
    resource["source"] = {"observer": {"display": source_id}}
    if source is not None and source.get("AuditEnterpriseSiteID"):
        resource["source"]["site"] = source.get("AuditEnterpriseSiteID")
    source_type = _coding(source.find("AuditSourceTypeCode")) if source is not None else None
    if source_type:
        resource["source"]["type"] = [{"system": SOURCE_TYPE, "code": source_type["code"]}]
    entities = [_entity(o) for o in message.iterchildren("ParticipantObjectIdentification")]
    if entities:
        resource["entity"] = entities
    return resource


def _date_clause(value: str) -> Any:
    prefix, text = (value[:2], value[2:]) if value[:2] in PREFIXES else ("eq", value)
    try:
        when = parse_iso(text)
    except ValueError:
        raise BadSearch(f"date must be an ISO 8601 date or date-time with an optional prefix, got {value!r}") \
            from None
    column = AuditRecord.recorded_at
    return {"ge": column >= when, "gt": column > when, "le": column <= when, "lt": column < when,
            "eq": column == when}[prefix]


def _token(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else value


def _query(organisation_oid: str) -> Any:
    unknown = sorted(set(request.args) - PARAMETERS)
    if unknown:
        raise BadSearch(f"unknown search parameter(s) {', '.join(unknown)}")
    query = select(AuditRecord).where(AuditRecord.organisation_oid == organisation_oid)
    for value in request.args.getlist("date"):
        query = query.where(_date_clause(value))
    if "patient" in request.args:
        query = query.where(AuditRecord.patient_id == _token(request.args["patient"]))
    if "entity" in request.args:
        value = _token(request.args["entity"])
        query = query.where(or_(AuditRecord.patient_id == value, AuditRecord.study_uid == value))
    if "agent" in request.args and _token(request.args["agent"]) != organisation_oid:
        raise PermissionError("an organisation may read only the records of its own calls")
    if "outcome" in request.args:
        if request.args["outcome"] not in ("0", "4", "8", "12"):
            raise BadSearch("outcome must be 0, 4, 8 or 12")
        query = query.where(AuditRecord.outcome == int(request.args["outcome"]))
    if "type" in request.args:
        query = query.where(AuditRecord.event_id == _token(request.args["type"]))
    if "subtype" in request.args:
        query = query.where(AuditRecord.event_type == _token(request.args["subtype"]))
    return query


@blueprint.get("/fhir/AuditEvent")
def search_audit_events() -> Response:
    caller = authenticate("audit:read")
    try:
        query = _query(caller.organisation_oid)
        count = int(request.args.get("_count", "100"))
        page = int(request.args["page"]) if "page" in request.args else None
    except BadSearch as exc:
        return problem(400, "Bad Request", str(exc))
    except PermissionError as exc:
        return problem(403, "Forbidden", str(exc))
    except ValueError:
        return problem(400, "Bad Request", "_count and page must be whole numbers")
    count = max(1, min(count, 500))
    if page is not None:
        query = query.where(AuditRecord.seq < page)
    rows = list(get_session().scalars(query.order_by(AuditRecord.seq.desc()).limit(count + 1)))
    more, rows = len(rows) > count, rows[:count]
    base = request.host_url.rstrip("/")
    links = [{"relation": "self", "url": request.url}]
    if more and rows:
        args: dict[str, Any] = {k: v for k, v in request.args.to_dict(flat=False).items() if k != "page"}
        links.append({"relation": "next", "url": base + url_for("audit_fhir.search_audit_events", page=rows[-1].seq,
                                                                 **args)})
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": links,
              "entry": [{"fullUrl": f"{base}/fhir/AuditEvent/{r.seq}", "resource": audit_event(r),
                         "search": {"mode": "match"}} for r in rows]}
    record_audit_read(caller)
    response = jsonify(bundle)
    response.content_type = FHIR_JSON
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)

