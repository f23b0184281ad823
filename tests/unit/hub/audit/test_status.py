"""The chain status the console shows: each walk remembered; small stale chains walked again, large ones not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from hub.audit import status
from hub.audit.chain import Entry, append
from hub.audit.status import SigningKeyError, chain_status, needs_walk, signing_public_key, verify_and_remember
from hub.audit.tables import AuditRecord
from hub.db import Database

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _append(database: Database, count: int) -> None:
    with database.session() as session:
        for n in range(count):
            append(session, Entry("110112", "ITI-18", "E", 0, f"<AuditMessage n='{n}'/>"))


def test_never_verified_then_intact_then_records_appended_since(database: Database) -> None:
    _append(database, 5)
    with database.session() as session:
        assert chain_status(session).intact is None and needs_walk(session, NOW)
    with database.session() as session:
        verify_and_remember(session, KEY.public_key(), NOW)
    _append(database, 2)
    with database.session() as session:
        seen = chain_status(session)
        assert seen.intact is True and seen.verified_through == 5 and seen.appended_since == 2
        assert not needs_walk(session, NOW + timedelta(minutes=1))
        assert needs_walk(session, NOW + status.STALE_AFTER + timedelta(seconds=1))


def test_a_broken_chain_is_remembered_with_its_first_bad_record(database: Database) -> None:
    _append(database, 4)
    with database.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(message="<AuditMessage/>"))
    with database.session() as session:
        assert not verify_and_remember(session, KEY.public_key(), NOW).intact
    with database.session() as session:
        seen = chain_status(session)
        assert seen.intact is False and seen.problem.startswith("record 3: edited")


def test_a_large_chain_is_walked_only_on_request(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "AUTO_VERIFY_RECORDS", 3)
    _append(database, 4)
    with database.session() as session:
        assert not needs_walk(session, NOW)


def test_an_unreadable_signing_key_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SigningKeyError, match="cannot read"):
        signing_public_key(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(SigningKeyError, match="cannot read"):
        signing_public_key(tmp_path / "bad.key")
