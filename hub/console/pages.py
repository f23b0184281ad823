"""The compliance console's pages: timeline, record detail, disclosure report, CSV exports, chain status.

Roles compliance and admin read everything; admin also manages accounts
(`/audit/users`). Every read of the trail is itself recorded (Audit Log Used,
110101) with the person who read it, so the console leaves a trail too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, abort, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from hub import get_settings
from hub.audit import codes
from hub.audit.csvexport import disclosures_csv, records_csv
from hub.audit.disclosure import disclosures, refused_attempts
from hub.audit.events import account_changed
from hub.audit.query import AuditFilter, BadParameter, criteria_from_args, search, search_all
from hub.audit.reading import UnreadableMessage, describe, pretty_xml
from hub.audit.status import SigningKeyError, chain_status, needs_walk, signing_public_key, verify_and_remember
from hub.audit.tables import AuditRecord
from hub.audit.web import hub_party, record_audit_read, source_id, write_event
from hub.console.accounts import find_user, is_locked, unlock
from hub.console.tables import ConsoleUser
from hub.console.web import blueprint, current_user, page_url, person, requires_role
from hub.db import get_database, get_session
from hub.tables import Organisation

FILTERS = ("patient_id", "organisation", "user", "event_type", "outcome", "study_uid", "since", "until")
OUTCOMES = {0: "Success", 4: "Minor failure", 8: "Serious failure", 12: "Major failure"}
PAGE_SIZE = 50


def _organisation_names() -> dict[str, str]:
    return {oid: name for oid, name in get_session().execute(select(Organisation.oid, Organisation.name))}


def _criteria() -> AuditFilter:
    try:
        return criteria_from_args({k: v for k, v in request.args.items() if k in FILTERS and v != ""})
    except BadParameter as exc:
        abort(400, str(exc))


def _refresh_chain_status() -> None:
    """Walk a small chain whose last verification is stale (see hub.audit.status), in a transaction of its own."""
    get_session().commit()
    database = get_database()
    with database.session() as session:
        if not needs_walk(session):
            return
    try:
        key = signing_public_key(get_settings().path(get_settings().signing_key))
    except SigningKeyError:
        return  # the page shows the chain as not verified; `xdshub audit verify` names the problem
    with database.session() as session:
        verify_and_remember(session, key)


def _export_name(stem: str) -> str:
    return f"{stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.csv"


def _csv(lines: Iterator[str], name: str) -> Response:
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@blueprint.get("/", strict_slashes=False)
@requires_role()
def timeline() -> str:
    criteria = _criteria()
    cursor = request.args.get("cursor", "")
    if cursor and not cursor.isdigit():
        abort(400, f"cursor must be a record number, got {cursor!r}")
    _refresh_chain_status()
    session = get_session()
    page = search(session, criteria, PAGE_SIZE, int(cursor) if cursor else None)
    filters = {name: request.args.get(name, "") for name in FILTERS}
    html = render_template(
        "timeline.html", records=page.records, filters=filters, outcomes=OUTCOMES, names=_organisation_names(),
        event_name=codes.display_name, event_types=codes.EVENT_TYPE_CHOICES, status=chain_status(session),
        older=page_url("console.timeline", cursor=page.next_cursor, **filters) if page.next_cursor else None,
        newest=page_url("console.timeline", **filters) if cursor else None,
        export=page_url("console.export_records", **filters))
    record_audit_read(person(current_user()))
    return html


@blueprint.get("/records/<int:seq>")
@requires_role()
def record_detail(seq: int) -> str:
    record = get_session().get(AuditRecord, seq)
    if record is None:
        abort(404, f"there is no audit record {seq} (it may have been archived)")
    try:
        view, unreadable = describe(record.message), ""
    except UnreadableMessage as exc:
        view, unreadable = None, str(exc)
    html = render_template("record.html", record=record, view=view, unreadable=unreadable,
                           xml=pretty_xml(record.message) if view is not None else record.message,
                           outcomes=OUTCOMES, names=_organisation_names(), event_name=codes.display_name)
    record_audit_read(person(current_user()))
    return html


@blueprint.get("/export.csv")
@requires_role()
def export_records() -> Response:
    criteria = _criteria()
    record_audit_read(person(current_user()))
    # A session of its own: the response streams after this view returns.
    session = get_database().new_session()

    def lines() -> Iterator[str]:
        try:
            yield from records_csv(search_all(session, criteria))
        finally:
            session.close()
    return _csv(lines(), _export_name("audit"))


def _report_window() -> tuple[str, datetime | None, datetime | None]:
    criteria = _criteria()
    return (request.args.get("patient_id", "").strip(), criteria.since, criteria.until)


@blueprint.get("/disclosures")
@requires_role()
def disclosure_report() -> str:
    patient_id, since, until = _report_window()
    rows, refused = ([], 0)
    if patient_id:
        session = get_session()
        rows, refused = disclosures(session, patient_id, since, until), refused_attempts(session, patient_id,
                                                                                          since, until)
    filters = {name: request.args.get(name, "") for name in ("patient_id", "since", "until")}
    html = render_template("disclosures.html", patient_id=patient_id, rows=rows, refused=refused, filters=filters,
                           outcomes=OUTCOMES, event_name=codes.display_name,
                           export=page_url("console.export_disclosures", **filters) if patient_id else None)
    if patient_id:
        record_audit_read(person(current_user()))
    return html


@blueprint.get("/disclosures.csv")
@requires_role()
def export_disclosures() -> Response:
    patient_id, since, until = _report_window()
    if not patient_id:
        abort(400, "patient_id is required: the disclosure report is per patient")
    rows = disclosures(get_session(), patient_id, since, until)
    record_audit_read(person(current_user()))
    return _csv(disclosures_csv(rows), _export_name("disclosures"))


@blueprint.post("/verify")
@requires_role()
def verify_now() -> Any:
    try:
        key = signing_public_key(get_settings().path(get_settings().signing_key))
    except SigningKeyError as exc:
        abort(500, str(exc))
    get_session().commit()
    with get_database().session() as session:
        verify_and_remember(session, key)
    record_audit_read(person(current_user()), what=f"{get_settings().base_url}/audit (chain verification)")
    return redirect(url_for("console.timeline"), 303)


@blueprint.get("/users")
@requires_role("admin")
def users() -> str:
    accounts = list(get_session().scalars(select(ConsoleUser).order_by(ConsoleUser.name)))
    return render_template("users.html", accounts=accounts, locked={a.name for a in accounts
                                                                    if is_locked(a, datetime.now(UTC))})


@blueprint.post("/users/<name>/unlock")
@requires_role("admin")
def unlock_user(name: str) -> Any:
    session = get_session()
    account = find_user(session, name)
    if account is None:
        abort(404, f"no console account {name!r}")
    unlock(account)
    write_event(session, account_changed(by=person(current_user()), hub=hub_party(), time=datetime.now(UTC),
                                         source_id=source_id(), account=account.name, role=account.role,
                                         change="unlocked"))
    session.commit()
    return redirect(url_for("console.users"), 303)
