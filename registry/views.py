"""The Document Registry actor at POST /xds/registry: ITI-42 and ITI-18 over SOAP 1.2."""

from __future__ import annotations

from flask import Blueprint, Flask, Response
from lxml import etree
from sqlalchemy.orm import Session

from hub import get_settings
from hub.errors import XdsError
from hub.security.identity import Caller
from hub.soap.endpoint import SoapOperation, handle_soap
from hub.soap.envelope import SoapRequest
from registry.ebrim import (
    parse_adhoc_query_request,
    parse_submit_objects_request,
    render_adhoc_query_response,
    render_registry_response,
)
from registry.transactions.iti18_query import run_stored_query
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
    register_document_set(session, submission, caller, get_settings())
    return render_registry_response(ResponseStatus.SUCCESS, [])


def _query(caller: Caller, session: Session, soap: SoapRequest) -> etree._Element:
    query = parse_adhoc_query_request(soap.body)
    result = run_stored_query(session, query, caller, get_settings())
    session.commit()  # read-only: end the transaction (and SQLite's gate) before rendering
    if result.return_type == ReturnType.OBJECT_REF.value:
        return render_adhoc_query_response(ResponseStatus.SUCCESS, None, result.refs, [])
    return render_adhoc_query_response(ResponseStatus.SUCCESS, result.objects, None, [])


def _register_errors(errors: list[XdsError]) -> etree._Element:
    return render_registry_response(ResponseStatus.FAILURE, errors)


def _query_errors(errors: list[XdsError]) -> etree._Element:
    return render_adhoc_query_response(ResponseStatus.FAILURE, None, None, errors)


OPERATIONS = {
    op.action: op
    for op in (
        SoapOperation("ITI-42", ACTION_REGISTER, ACTION_REGISTER_RESPONSE, "xds:register",
                      _register, _register_errors),
        SoapOperation("ITI-18", ACTION_STORED_QUERY, ACTION_STORED_QUERY_RESPONSE, "xds:query",
                      _query, _query_errors),
    )
}


@blueprint.post("/xds/registry")
def registry_endpoint() -> Response:
    return handle_soap(OPERATIONS)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
