"""Console sessions: only the token's hash is stored; idle and absolute expiry; logout; CSRF comparison."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hub.console.accounts import add_user, find_user
from hub.console.sessions import SessionPolicy, end, end_all, find, start
from hub.console.tables import ConsoleSession
from hub.credentials import same_token
from hub.db import Database

POLICY = SessionPolicy(idle_seconds=900, lifetime_seconds=3600)
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _started(database: Database, now: datetime = NOW) -> str:
    with database.session() as session:
        user = add_user(session, "alice", "compliance", "correct horse battery")
        return start(session, user, POLICY, "127.0.0.1", "test", now).token


def _find(database: Database, token: str | None, now: datetime) -> str | None:
    with database.session() as session:
        found = find(session, token, POLICY, now)
        return found[1].name if found else None


def test_the_database_holds_the_tokens_hash_never_the_token(database: Database) -> None:
    token = _started(database)
    with database.session() as session:
        (row,) = session.scalars(select(ConsoleSession))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
        assert len(token) >= 43 and row.csrf_token and row.csrf_token != token   # 256 random bits each
    assert _find(database, token, NOW) == "alice"


def test_an_idle_session_ends_and_its_row_is_removed(database: Database) -> None:
    token = _started(database)
    assert _find(database, token, NOW + timedelta(seconds=800)) == "alice"       # moves last-seen on
    assert _find(database, token, NOW + timedelta(seconds=1600)) == "alice"
    assert _find(database, token, NOW + timedelta(seconds=2600)) is None
    with database.session() as session:
        assert session.scalars(select(ConsoleSession)).all() == []


def test_a_busy_session_still_ends_at_its_lifetime(database: Database) -> None:
    token = _started(database)
    for minutes in range(10, 60, 10):
        assert _find(database, token, NOW + timedelta(minutes=minutes)) == "alice"
    assert _find(database, token, NOW + timedelta(seconds=3600)) is None


def test_logout_and_unknown_tokens(database: Database) -> None:
    token = _started(database)
    assert _find(database, token + "x", NOW) is None
    assert _find(database, "", NOW) is None and _find(database, "a" * 5000, NOW) is None
    with database.session() as session:
        end(session, token)
    assert _find(database, token, NOW) is None


def test_a_disabled_users_sessions_end(database: Database) -> None:
    token = _started(database)
    with database.session() as session:
        found = find(session, token, POLICY, NOW)
        assert found is not None
        found[1].disabled = True
    assert _find(database, token, NOW) is None


def test_ending_all_sessions_of_a_user(database: Database) -> None:
    first = _started(database)
    with database.session() as session:
        user = find_user(session, "alice")
        assert user is not None
        second = start(session, user, POLICY, "127.0.0.1", "test", NOW).token
    with database.session() as session:
        user = find_user(session, "alice")
        assert user is not None
        end_all(session, user)
    assert _find(database, first, NOW) is None and _find(database, second, NOW) is None


def test_csrf_tokens_compare_only_when_both_are_present_and_equal() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd") and not same_token("abc", None) and not same_token(None, None)
    assert not same_token("", "")
