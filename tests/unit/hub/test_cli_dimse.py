"""xdshub ae add, list and remove on a real data dir, each change audited; xdshub dimse serve's refusals;
and `xdshub serve` running the DIMSE listener beside gunicorn only when dimse_port is set."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from hub.server import companion_commands
from hub.settings import load_settings

OID = "1.2.3.4.5"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    assert run("init", "--data-dir", str(folder)).exit_code == 0
    result = run("org", "add", "Org A", "--oid", OID, "--data-dir", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def alerts(data_dir: Path) -> list[AuditRecord]:
    database = Database(load_settings(data_dir, environ={}).database_url)
    try:
        with database.session() as session:
            return list(session.scalars(select(AuditRecord).where(AuditRecord.event_id == "110113")
                                        .order_by(AuditRecord.seq)))
    finally:
        database.dispose()


def test_add_list_remove_each_audited(data_dir: Path) -> None:
    before = len(alerts(data_dir))
    added = run("ae", "add", "CT_1", "--org", OID, "--host", "10.1.2.0/24", "--data-dir", str(data_dir))
    assert added.exit_code == 0, added.output
    assert "registered AE title CT_1 for Org A (1.2.3.4.5), from 10.1.2.0/24 only" in added.output
    listed = run("ae", "list", "--data-dir", str(data_dir))
    assert listed.exit_code == 0 and "CT_1" in listed.output and "10.1.2.0/24" in listed.output
    removed = run("ae", "remove", "CT_1", "--data-dir", str(data_dir))
    assert removed.exit_code == 0, removed.output
    assert "no AE title registered" in run("ae", "list", "--data-dir", str(data_dir)).output
    records = alerts(data_dir)[before:]
    assert [r.event_type for r in records] == ["110137", "110137"]     # User Security Attributes Changed
    assert "CT_1 added" in records[0].message and "CT_1 removed" in records[1].message


@pytest.mark.parametrize(("args", "message"), [
    (("ae", "add", "WAY_TOO_LONG_AE_TITLE", "--org", OID), "longer than 16"),
    (("ae", "add", "CT1", "--org", "9.9.9"), "no organisation with OID"),
    (("ae", "add", "CT1", "--org", OID, "--host", "ct.example.org"), "not an IP address"),
    (("ae", "remove", "NOBODY"), "not registered"),
])
def test_refusals_are_one_line_and_change_nothing(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    before = len(alerts(data_dir))
    result = run(*args, "--data-dir", str(data_dir))
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output
    assert len(alerts(data_dir)) == before


def test_dimse_serve_refuses_when_dimse_is_off(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDSHUB_DIMSE_PORT", "0")
    result = run("dimse", "serve", "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "DIMSE is off" in result.output


def test_serve_runs_the_dimse_listener_only_when_a_port_is_set(tmp_path: Path) -> None:
    settings = replace(load_settings(tmp_path, environ={}), audit_collectors=(), publish_quiet_seconds=0)
    assert companion_commands(replace(settings, dimse_port=0)) == []
    [command] = companion_commands(replace(settings, dimse_port=11113))
    assert command[0] == sys.executable
    assert command[-8:] == ["dimse", "serve", "--data-dir", str(tmp_path), "--host", "127.0.0.1", "--port", "11113"]
