"""`/audit/login` and `/audit/logout`: console sign-in with a local account, audited either way.

Every attempt, granted or refused, writes a User Authentication record
(Login) in the same database transaction as what it changed: the new
session, or the account's failure count and lock. The login form carries a
double-submit CSRF token (cookie and field); logout is a POST with the
session's own token, so no other site can sign a person in or out.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, make_response, redirect, render_template, request, url_for

from hub.audit.events import Party, console_login
from hub.audit.message import Outcome
from hub.audit.web import hub_party, source_id, write_event
from hub.console.accounts import LoginRefused, authenticate, normalise_name
from hub.console.sessions import end, start
from hub.console.tables import ConsoleUser
from hub.console.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    blueprint,
    lockout_policy,
    person,
    safe_next,
    session_policy,
    signed_in,
)
from hub.credentials import new_token, same_token
from hub.db import get_session


def _login_page(error: str = "", status: int = 200, name: str = "") -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or new_token()
    response = make_response(render_template("login.html", error=error, name=name, login_token=token,
                                              next=safe_next(request.values.get("next"))), status)
    response.set_cookie(LOGIN_COOKIE, token, secure=True, httponly=True, samesite="Strict", path="/")
    return response


def _audit_login(user: ConsoleUser | None, name: str, outcome: Outcome, description: str | None,
                 logout: bool = False) -> None:
    who = person(user) if user is not None else Party(user_id=name or "unknown", alternative_id=name or None,
                                                      address=request.remote_addr)
    write_event(get_session(), console_login(user=who, hub=hub_party(), outcome=outcome, time=datetime.now(UTC),
                                             source_id=source_id(), logout=logout, description=description))


@blueprint.get("/login")
def login() -> Response:
    if signed_in() is not None:
        return redirect(safe_next(request.args.get("next")))  # type: ignore[return-value]
    return _login_page()


@blueprint.post("/login")
def login_submit() -> Response:
    if not same_token(request.cookies.get(LOGIN_COOKIE), request.form.get("login_token")):
        return _login_page("The login form expired or did not come from this page. Please try again.", 400)
    name = normalise_name(request.form.get("name", ""))[:64]
    password = request.form.get("password", "")
    session = get_session()
    try:
        user = authenticate(session, name, password, lockout_policy())
    except LoginRefused as refused:
        _audit_login(None, name, Outcome.MINOR_FAILURE, refused.reason)
        session.commit()
        return _login_page(refused.message, 401, name)
    started = start(session, user, session_policy(), request.remote_addr or "",
                    request.headers.get("User-Agent", ""))
    _audit_login(user, name, Outcome.SUCCESS, None)
    session.commit()
    response = redirect(safe_next(request.form.get("next")), 303)
    response.set_cookie(SESSION_COOKIE, started.token, secure=True, httponly=True, samesite="Strict", path="/")
    response.delete_cookie(LOGIN_COOKIE, secure=True, httponly=True, samesite="Strict", path="/")
    return response  # type: ignore[return-value]


@blueprint.post("/logout")
def logout() -> Response:
    found = signed_in()
    response = redirect(url_for("console.login"), 303)
    response.delete_cookie(SESSION_COOKIE, secure=True, httponly=True, samesite="Strict", path="/")
    if found is None:
        return response  # type: ignore[return-value]
    if not same_token(found[0].csrf_token, request.form.get("csrf_token")):
        return make_response(render_template("error.html", status=400, title="Bad Request",
                                             detail="the logout form did not come from this console session"), 400)
    session = get_session()
    end(session, request.cookies.get(SESSION_COOKIE))
    _audit_login(found[1], found[1].name, Outcome.SUCCESS, None, logout=True)
    session.commit()
    return response  # type: ignore[return-value]
