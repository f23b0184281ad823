"""Error mapping for the JSON (non-SOAP) endpoints: RFC 9457 problem documents.

SOAP paths map their errors in `hub.soap.faults`; everything else lands here,
so no path answers with a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from hub.errors import AuthenticationFault, AuthorizationFault, SoapFault, XdsError, XdsErrorList
from hub.soap.faults import bearer_challenge

log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str = "", **extra: object) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(AuthenticationFault)
    def _unauthenticated(exc: AuthenticationFault) -> Response:
        response = problem(401, "Unauthorized", exc.reason)
        response.headers["WWW-Authenticate"] = bearer_challenge(exc.error, exc.reason)
        return response

    @app.errorhandler(AuthorizationFault)
    def _forbidden(exc: AuthorizationFault) -> Response:
        response = problem(403, "Forbidden", exc.reason)
        response.headers["WWW-Authenticate"] = bearer_challenge(exc.error, exc.reason)
        return response

    @app.errorhandler(SoapFault)
    def _fault(exc: SoapFault) -> Response:
        return problem(exc.http_status, "Bad Request", exc.reason)

    @app.errorhandler(XdsError)
    def _xds(exc: XdsError) -> Response:
        return problem(400, exc.code.value, exc.message)

    @app.errorhandler(XdsErrorList)
    def _xds_list(exc: XdsErrorList) -> Response:
        return problem(400, "XDS errors", str(exc), errors=[
            {"code": e.code.value, "detail": e.message, "location": e.location} for e in exc.errors])

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return problem(exc.code or 500, exc.name, exc.description or "")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal Server Error", f"request id {g.get('request_id', 'unknown')}")
