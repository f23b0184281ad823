"""The console's blueprint and what every page shares: who is signed in, role checks, CSRF, headers.

Cookies are `__Host-` prefixed, Secure, HttpOnly and SameSite=Strict, so a
browser sends them only over HTTPS, only to this host and never on a request
another site starts. Every page answers with a strict Content-Security-Policy
(no script at all, nothing from elsewhere), no framing and no caching.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from hub import get_settings
from hub.audit.events import Party
from hub.console.accounts import AUDIT_ROLES, LockoutPolicy
from hub.console.sessions import SessionPolicy, find
from hub.console.tables import ConsoleSession, ConsoleUser
from hub.credentials import same_token
from hub.db import get_session

blueprint = Blueprint("console", __name__, url_prefix="/audit", template_folder="templates",
                      static_folder="static", static_url_path="/static")

SESSION_COOKIE = "__Host-xdshub-console"
LOGIN_COOKIE = "__Host-xdshub-login"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

View = TypeVar("View", bound=Callable[..., Any])


def session_policy() -> SessionPolicy:
    settings = get_settings()
    return SessionPolicy(settings.console_session_idle, settings.console_session_lifetime)


def lockout_policy() -> LockoutPolicy:
    settings = get_settings()
    return LockoutPolicy(settings.console_lockout_attempts, settings.console_lockout_seconds)


def signed_in() -> tuple[ConsoleSession, ConsoleUser] | None:
    """The request's live session and user, from its cookie; its last-seen time is committed at once."""
    if "console_signed_in" not in g:
        session = get_session()
        found = find(session, request.cookies.get(SESSION_COOKIE), session_policy())
        session.commit()
        g.console_signed_in = found
    return cast(tuple[ConsoleSession, ConsoleUser] | None, g.console_signed_in)


def current_user() -> ConsoleUser:
    found = signed_in()
    assert found is not None, "current_user() outside a view that requires a login"
    return found[1]


def person(user: ConsoleUser) -> Party:
    """The signed-in person as an audit participant."""
    return Party(user_id=user.name, alternative_id=user.name, name=f"{user.name} ({user.role})",
                 address=request.remote_addr)


def requires_role(*roles: str) -> Callable[[View], View]:
    """Views for signed-in users with one of `roles`: others are sent to the login page, or refused (403)."""
    allowed = frozenset(roles or AUDIT_ROLES)

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = signed_in()
            if found is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if found[1].role not in allowed:
                abort(403, f"this page is for the roles {', '.join(sorted(allowed))}; "
                           f"account {found[1].name} has role {found[1].role}")
            if request.method == "POST" and not same_token(found[0].csrf_token, request.form.get("csrf_token")):
                abort(400, "the form did not come from this console session (CSRF token missing or wrong); "
                           "reload the page and try again")
            return view(*args, **kwargs)
        return cast(View, wrapper)
    return decorate


def safe_next(target: str | None) -> str:
    """Where to go after login: a console path or the EMR launch only, never another site (no open redirect)."""
    default = url_for("console.timeline")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(("/audit", "/IHEInvokeImageDisplay")) \
            or target.startswith("//") or "\\" in target:
        return default
    return target


def page_url(endpoint: str, **params: Any) -> str:
    """A console URL with the non-empty `params` as its query."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return url_for(endpoint) + (f"?{query}" if query else "")


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@blueprint.context_processor
def _template_globals() -> dict[str, Any]:
    found = g.get("console_signed_in")
    return {"console_user": found[1] if found else None, "csrf_token": found[0].csrf_token if found else ""}


@blueprint.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> tuple[str, int]:
    return render_template("error.html", status=exc.code or 500, title=exc.name,
                           detail=exc.description or ""), exc.code or 500
