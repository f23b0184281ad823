"""xdshub audit verify, archive and verify-archive on a real data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub.audit.chain import Entry, append
from hub.cli import main
from hub.db import Database
from hub.settings import load_settings


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    assert run("init", "--data-dir", str(folder)).exit_code == 0
    settings = load_settings(folder, environ={})
    database = Database(settings.database_url)
    with database.session() as session:
        for n in range(12):
            append(session, Entry("110112", "ITI-18", "E", 0, f"<AuditMessage n='{n}'/>"),
                   settings.path(settings.signing_key))
    database.dispose()
    return folder


def test_archive_then_verify_both_parts(data_dir: Path) -> None:
    assert "audit chain intact: 12 records" in run("audit", "verify", "--data-dir", str(data_dir)).output
    result = run("audit", "archive", "--before", "2999-01-01T00:00:00Z", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "archived records 1-12" in result.output
    (archived,) = (data_dir / "audit-archive").glob("*.jsonl")
    verified = run("audit", "verify", "--data-dir", str(data_dir))
    assert verified.exit_code == 0 and "1 records" in verified.output   # what remains: the archiving, audited
    result = run("audit", "verify-archive", str(archived), "--data-dir", str(data_dir))
    assert result.exit_code == 0 and "audit archive intact" in result.output
    archived.write_text(archived.read_text().replace("n='3'", "n='4'"))
    result = run("audit", "verify-archive", str(archived), "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "record 4: edited" in result.output


def test_archive_with_a_bad_date_is_a_clear_error(data_dir: Path) -> None:
    result = run("audit", "archive", "--before", "last week", "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "ISO 8601" in result.output


def test_export_without_collectors_says_so(data_dir: Path) -> None:
    result = run("audit", "export", "--once", "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "no audit_collectors in hub.toml" in result.output


def test_export_once_to_a_collector_that_is_down_fails_and_keeps_the_records(data_dir: Path) -> None:
    toml = data_dir / "hub.toml"
    toml.write_text(toml.read_text().replace("audit_collectors = []", 'audit_collectors = ["127.0.0.1:9"]'))
    result = run("audit", "export", "--once", "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "127.0.0.1:9" in result.output
    assert "audit chain intact: 12 records" in run("audit", "verify", "--data-dir", str(data_dir)).output
