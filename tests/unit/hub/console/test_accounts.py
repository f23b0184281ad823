"""Console accounts: argon2id hashes, the password policy, lockout after repeated failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from hub.console.accounts import (
    AccountError,
    LockoutPolicy,
    LoginRefused,
    add_user,
    authenticate,
    find_user,
    is_locked,
    set_password,
)
from hub.db import Database

PASSWORD = "correct horse battery"
POLICY = LockoutPolicy(attempts=3, seconds=600)
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def test_a_password_is_kept_only_as_an_argon2id_hash(database: Database) -> None:
    with database.session() as session:
        user = add_user(session, "Alice", "compliance", PASSWORD)
        assert user.name == "alice"                      # names are case-insensitive
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
    with database.session() as session:
        assert authenticate(session, "ALICE", PASSWORD, POLICY, NOW).role == "compliance"


@pytest.mark.parametrize("name, role, password, message", [
    ("../etc", "compliance", PASSWORD, "account names"),
    ("", "compliance", PASSWORD, "account names"),
    ("bob", "root", PASSWORD, "unknown role"),
    ("bob", "admin", "short", "at least 12"),
    ("bob", "admin", "x" * 1025, "at most 1024"),
])
def test_bad_accounts_are_refused_and_nothing_is_stored(database: Database, name: str, role: str, password: str,
                                                        message: str) -> None:
    with database.session() as session:
        with pytest.raises(AccountError, match=message):
            add_user(session, name, role, password)
        assert find_user(session, "bob") is None


def test_a_taken_name_is_refused(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "admin", PASSWORD)
    with database.session() as session:
        with pytest.raises(AccountError, match="exists already"):
            add_user(session, "Alice", "compliance", PASSWORD)


def test_unknown_name_and_wrong_password_read_the_same_at_the_form(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD)
    with database.session() as session:
        with pytest.raises(LoginRefused) as unknown:
            authenticate(session, "mallory", PASSWORD, POLICY, NOW)
        with pytest.raises(LoginRefused) as wrong:
            authenticate(session, "alice", "not the password", POLICY, NOW)
    assert unknown.value.message == wrong.value.message
    assert "unknown console account" in unknown.value.reason and "wrong password" in wrong.value.reason


def _fail(database: Database, times: int, now: datetime) -> None:
    for _ in range(times):
        with database.session() as session:
            with pytest.raises(LoginRefused):
                authenticate(session, "alice", "wrong password!", POLICY, now)


def test_repeated_failures_lock_the_account_even_for_the_right_password(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD)
    _fail(database, POLICY.attempts, NOW)
    with database.session() as session:
        user = find_user(session, "alice")
        assert user is not None and is_locked(user, NOW)
        with pytest.raises(LoginRefused, match="locked") as refused:
            authenticate(session, "alice", PASSWORD, POLICY, NOW + timedelta(seconds=POLICY.seconds - 1))
        assert "locked" in refused.value.message
    with database.session() as session:         # the lock expires
        assert authenticate(session, "alice", PASSWORD, POLICY, NOW + timedelta(seconds=POLICY.seconds + 1))


def test_a_success_resets_the_count_of_failures(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD)
    _fail(database, POLICY.attempts - 1, NOW)
    with database.session() as session:
        authenticate(session, "alice", PASSWORD, POLICY, NOW)
    _fail(database, POLICY.attempts - 1, NOW)
    with database.session() as session:
        user = authenticate(session, "alice", PASSWORD, POLICY, NOW)
        assert user.failed_attempts == 0 and user.last_login_at is not None


def test_a_disabled_account_cannot_log_in(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD).disabled = True
    with database.session() as session:
        with pytest.raises(LoginRefused, match="disabled"):
            authenticate(session, "alice", PASSWORD, POLICY, NOW)


def test_a_hash_of_an_older_cost_is_renewed_at_login(database: Database) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD).password_hash = weak
    with database.session() as session:
        authenticate(session, "alice", PASSWORD, POLICY, NOW)
    with database.session() as session:
        user = find_user(session, "alice")
        assert user is not None and user.password_hash != weak
        assert not PasswordHasher().check_needs_rehash(user.password_hash)


def test_a_new_password_unlocks_and_replaces_the_old(database: Database) -> None:
    with database.session() as session:
        add_user(session, "alice", "compliance", PASSWORD)
    _fail(database, POLICY.attempts, NOW)
    with database.session() as session:
        user = find_user(session, "alice")
        assert user is not None
        set_password(user, "a brand new passphrase")
    with database.session() as session:
        with pytest.raises(LoginRefused):
            authenticate(session, "alice", PASSWORD, POLICY, NOW)
        assert authenticate(session, "alice", "a brand new passphrase", POLICY, NOW)
