"""xdshub user add, list, unlock, passwd and remove on a real data dir; each change audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.console.accounts import LockoutPolicy, LoginRefused, authenticate, find_user
from hub.console.sessions import SessionPolicy, find, start
from hub.db import Database
from hub.settings import load_settings

PASSWORD = "correct horse battery"


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    assert run("init", "--data-dir", str(folder)).exit_code == 0
    return folder


@pytest.fixture
def database(data_dir: Path) -> Database:
    db = Database(load_settings(data_dir, environ={}).database_url)
    yield db  # type: ignore[misc]
    db.dispose()


def _add(data_dir: Path, name: str = "alice", role: str = "compliance") -> Result:
    secret = data_dir.parent / "password.txt"
    secret.write_text(PASSWORD + "\n")
    return run("user", "add", name, "--role", role, "--password-file", str(secret), "--data-dir", str(data_dir))


def test_add_from_a_file_then_log_in(data_dir: Path, database: Database) -> None:
    result = _add(data_dir)
    assert result.exit_code == 0, result.output
    assert "alice created with role compliance" in result.output
    with database.session() as session:
        assert authenticate(session, "alice", PASSWORD, LockoutPolicy(5, 60)).role == "compliance"
        (record,) = session.scalars(select(AuditRecord).where(AuditRecord.event_id == "110113"))
        assert record.event_type == "110136" and "alice" in record.message   # Security Roles Changed
    listed = run("user", "list", "--data-dir", str(data_dir))
    assert "alice\tcompliance\tactive\tlast login" in listed.output


def test_add_reads_standard_input_with_a_dash(data_dir: Path, database: Database) -> None:
    result = run("user", "add", "bob", "--role", "admin", "--password-file", "-", "--data-dir", str(data_dir),
                 stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with database.session() as session:
        assert authenticate(session, "bob", PASSWORD, LockoutPolicy(5, 60)).role == "admin"


def test_add_asks_twice_at_the_terminal(data_dir: Path, database: Database) -> None:
    result = run("user", "add", "carol", "--role", "admin", "--data-dir", str(data_dir),
                 stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output                      # hidden input
    with database.session() as session:
        assert find_user(session, "carol") is not None


@pytest.mark.parametrize("args, stdin, message", [
    (["--role", "compliance", "--password-file", "-"], "short\n", "at least 12 characters"),
    (["--role", "root", "--password-file", "-"], PASSWORD, "Invalid value for '--role'"),
    (["--role", "compliance", "--password-file", "/nonexistent/file"], None, "No such file or directory"),
])
def test_bad_requests_are_clear_and_create_nothing(data_dir: Path, database: Database, args: list[str],
                                                  stdin: str | None, message: str) -> None:
    result = run("user", "add", "dave", *args, "--data-dir", str(data_dir), stdin=stdin)
    assert result.exit_code != 0 and message in result.output
    with database.session() as session:
        assert find_user(session, "dave") is None


def test_a_second_account_of_the_same_name_is_refused(data_dir: Path) -> None:
    assert _add(data_dir).exit_code == 0
    result = _add(data_dir, "ALICE", "admin")
    assert result.exit_code == 1 and "exists already" in result.output


def test_unlock_passwd_and_remove(data_dir: Path, database: Database) -> None:
    assert _add(data_dir).exit_code == 0
    policy = LockoutPolicy(2, 3600)
    for _ in range(2):
        with database.session() as session, pytest.raises(LoginRefused):
            authenticate(session, "alice", "wrong password!", policy)
    result = run("user", "list", "--data-dir", str(data_dir))
    assert "alice\tcompliance\tlocked" in result.output
    assert run("user", "unlock", "alice", "--data-dir", str(data_dir)).exit_code == 0
    with database.session() as session:
        user = authenticate(session, "alice", PASSWORD, policy)
        token = start(session, user, SessionPolicy(600, 600), "127.0.0.1", "test").token

    result = run("user", "passwd", "alice", "--password-file", "-", "--data-dir", str(data_dir),
                 stdin="another long passphrase\n")
    assert result.exit_code == 0 and "sessions were ended" in result.output
    with database.session() as session:
        assert find(session, token, SessionPolicy(600, 600), datetime.now(UTC)) is None
        assert authenticate(session, "alice", "another long passphrase", policy)

    assert run("user", "remove", "alice", "--data-dir", str(data_dir)).exit_code == 0
    with database.session() as session, pytest.raises(LoginRefused, match="disabled"):
        authenticate(session, "alice", "another long passphrase", policy)
    with database.session() as session:
        changes = [r.event_type for r in session.scalars(
            select(AuditRecord).where(AuditRecord.event_id == "110113").order_by(AuditRecord.seq))]
    assert changes == ["110136", "110137", "110137", "110136"]   # created, unlocked, new password, removed
    assert run("user", "unlock", "nobody", "--data-dir", str(data_dir)).output.endswith("no console account "
                                                                                          "'nobody'\n")


def test_a_clinician_belongs_to_an_organisation(data_dir: Path, database: Database) -> None:
    assert run("org", "add", "Riverside", "--oid", "1.3.6.1.4.1.21367.2026.61", "--data-dir", str(data_dir),
               "--out", str(data_dir.parent / "riverside")).exit_code == 0
    secret = data_dir.parent / "password.txt"
    secret.write_text(PASSWORD + "\n")
    common = ("--password-file", str(secret), "--data-dir", str(data_dir))
    without = run("user", "add", "carol", "--role", "clinician", *common)
    assert without.exit_code != 0 and "--org OID is required for a clinician" in without.output
    unknown = run("user", "add", "carol", "--role", "clinician", "--org", "1.2.3.404", *common)
    assert unknown.exit_code != 0 and "no organisation 1.2.3.404" in unknown.output
    assert run("user", "add", "cathy", "--role", "compliance", "--org", "1.3.6.1.4.1.21367.2026.61",
               *common).exit_code != 0
    made = run("user", "add", "carol", "--role", "clinician", "--org", "1.3.6.1.4.1.21367.2026.61", *common)
    assert made.exit_code == 0, made.output
    with database.session() as session:
        carol, cathy = find_user(session, "carol"), find_user(session, "cathy")
        assert carol is not None and carol.organisation_id is not None and cathy is None
