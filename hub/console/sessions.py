"""Console sessions: a random token in a cookie, kept in the database only as its SHA-256.

A session ends at logout, after `console_session_idle` seconds without a
request, or `console_session_lifetime` seconds after login, whichever comes
first; an ended session's row is deleted when it is next presented. Sessions
live in the database, so they survive a restart and every worker knows them.

CSRF (OWASP "synchronizer token"): each session has its own random token,
put in every form the console renders and compared in constant time on every
POST. The login form, which has no session yet, uses a double-submit token:
the same random value in a cookie and in the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.console.tables import ConsoleSession, ConsoleUser
from hub.credentials import new_token, token_digest


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: int
    lifetime_seconds: int


@dataclass(frozen=True)
class Started:
    token: str              # for the cookie; never stored
    row: ConsoleSession


def start(session: Session, user: ConsoleUser, policy: SessionPolicy, address: str, user_agent: str,
          now: datetime | None = None) -> Started:
    """A new session for `user` (the caller commits). Always a new token: no session fixation."""
    now = now or datetime.now(UTC)
    token = new_token()
    row = ConsoleSession(token_hash=token_digest(token), user_id=user.id, csrf_token=new_token(), created_at=now,
                         last_seen_at=now, expires_at=now + timedelta(seconds=policy.lifetime_seconds),
                         client_address=address[:64], user_agent=user_agent[:256])
    session.add(row)
    return Started(token, row)


def find(session: Session, token: str | None, policy: SessionPolicy,
         now: datetime | None = None) -> tuple[ConsoleSession, ConsoleUser] | None:
    """The live session of `token` and its user, its last-seen time moved to now; None when unknown or ended."""
    if not token or len(token) > 128:
        return None
    now = now or datetime.now(UTC)
    row = session.get(ConsoleSession, token_digest(token))
    if row is None:
        return None
    user = session.get(ConsoleUser, row.user_id)
    idle_limit = as_utc(row.last_seen_at) + timedelta(seconds=policy.idle_seconds)
    if user is None or user.disabled or now >= as_utc(row.expires_at) or now >= idle_limit:
        session.delete(row)
        return None
    row.last_seen_at = now
    return row, user


def end(session: Session, token: str | None) -> None:
    """Forget the session of `token` (logout); nothing when there is none."""
    if token and len(token) <= 128:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_digest(token)))


def end_all(session: Session, user: ConsoleUser) -> None:
    """Forget every session of `user` (password changed, account disabled)."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
