"""The audit chain: appended in the caller's transaction, and every kind of tampering caught by verify."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, select, update

from hub.audit.chain import CHECKPOINT_EVERY, HEAD_ID, Entry, append, content_hash
from hub.audit.tables import AuditCheckpoint, AuditHead, AuditRecord
from hub.audit.verify import verify_chain
from hub.db import Database
from hub.security.pki import new_private_key, private_key_pem


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, ec.EllipticCurvePublicKey]:
    private = new_private_key()
    path = tmp_path / "signing.key"
    path.write_bytes(private_key_pem(private))
    return path, private.public_key()


def entry(n: int) -> Entry:
    return Entry(event_id="110112", event_type="ITI-18", action="E", outcome=0, message=f"<AuditMessage n='{n}'/>",
                 organisation_oid="1.2.3", patient_id=f"P{n % 7}^^^&1.2&ISO")


Fill = Callable[[int], None]


@pytest.fixture
def fill(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey]) -> Fill:
    def run(count: int) -> None:
        with database.session() as session:
            for n in range(count):
                append(session, entry(n), key[0])
    return run


def problem(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey]) -> str:
    with database.session() as session:
        result = verify_chain(session, key[1])
    return str(result.problem) if result.problem else "intact"


Key = tuple[Path, ec.EllipticCurvePublicKey]


def test_an_untouched_chain_verifies_with_its_checkpoints(database: Database, key: Key, fill: Fill) -> None:
    fill(2 * CHECKPOINT_EVERY + 50)
    with database.session() as session:
        result = verify_chain(session, key[1])
        assert (result.records, result.checkpoints, result.problem) == (2 * CHECKPOINT_EVERY + 50, 2, None)
        seqs = list(session.scalars(select(AuditRecord.seq).order_by(AuditRecord.seq)))
    assert seqs == list(range(1, 2 * CHECKPOINT_EVERY + 51))


def test_a_record_rolls_back_with_its_transaction(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                                  fill: Fill) -> None:
    fill(3)
    with pytest.raises(RuntimeError), database.session() as session:
        append(session, entry(99), key[0])
        raise RuntimeError("the effect failed")
    assert problem(database, key) == "intact"
    fill(1)
    assert problem(database, key) == "intact"


def test_an_edited_record_is_named(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                   fill: Fill) -> None:
    fill(20)
    with database.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 7).values(outcome=8))
    assert problem(database, key) == "record 7: edited (its content no longer gives its hash)"


def test_a_deleted_record_is_named(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                   fill: Fill) -> None:
    fill(20)
    with database.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq == 12))
    assert problem(database, key).startswith("record 12: deleted")


def test_records_cut_off_the_end_are_caught(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                            fill: Fill) -> None:
    fill(20)
    with database.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq > 17))
    assert problem(database, key).startswith("record 18: deleted")


def test_reordered_records_are_caught(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                      fill: Fill) -> None:
    fill(20)
    with database.session() as session:
        five, six = (session.get(AuditRecord, n) for n in (5, 6))
        assert five is not None and six is not None
        values = [(r.message, r.prev_hash, r.hash) for r in (five, six)]
        (five.message, five.prev_hash, five.hash), (six.message, six.prev_hash, six.hash) = values[1], values[0]
    assert problem(database, key).startswith("record 5: does not follow")


def test_an_inserted_record_is_caught(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                      fill: Fill) -> None:
    fill(20)
    with database.session() as session:
        last = session.get(AuditRecord, 20)
        assert last is not None
        forged = Entry("110112", "ITI-18", "E", 0, "<AuditMessage forged='1'/>")
        session.add(AuditRecord(seq=21, recorded_at=last.recorded_at, event_id="110112", event_type="ITI-18",
                                action="E", outcome=0, message=forged.message, prev_hash=last.hash,
                                hash=content_hash(last.hash, 21, last.recorded_at, forged)))
    assert problem(database, key) == "record 21: inserted (the chain ends at 21, its head says 20)"


def test_a_chain_rewritten_without_the_key_fails_at_its_checkpoint(
        database: Database, key: tuple[Path, ec.EllipticCurvePublicKey], fill: Fill) -> None:
    fill(CHECKPOINT_EVERY + 10)
    with database.session() as session:   # edit record 3, recompute every hash after it, fix the head
        records = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        records[2].outcome = 12
        prev = records[1].hash
        for record in records[2:]:
            record.prev_hash = prev
            record.hash = prev = content_hash(prev, record.seq, record.recorded_at, Entry(
                record.event_id, record.event_type, record.action, record.outcome, record.message,
                record.organisation_oid, record.user_id, record.client_address, record.patient_id,
                record.study_uid))
        session.execute(update(AuditHead).values(hash=prev))
    assert problem(database, key) == \
        f"record {CHECKPOINT_EVERY}: differs from its signed checkpoint (the chain was rewritten up to here)"


def test_a_forged_checkpoint_signature_is_caught(database: Database, key: tuple[Path, ec.EllipticCurvePublicKey],
                                                 fill: Fill) -> None:
    fill(CHECKPOINT_EVERY)
    other = new_private_key().public_key()
    with database.session() as session:
        assert verify_chain(session, other).problem is not None
        session.execute(update(AuditCheckpoint).values(signature="AAAA"))
    assert "does not verify with the hub's key" in problem(database, key)


def test_concurrent_transactions_append_one_chain(database: Database,
                                                  key: tuple[Path, ec.EllipticCurvePublicKey]) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(15):
                with database.session() as session:
                    append(session, entry(n), key[0])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        result = verify_chain(session, key[1])
    assert (result.records, result.problem) == (60, None)


def test_retention_moves_old_records_and_both_parts_still_verify(
        database: Database, key: Key, fill: Fill, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from hub.audit.retention import archive, verify_archive

    fill(CHECKPOINT_EVERY + 30)
    with database.session() as session:
        cut = session.get(AuditRecord, 120)
        assert cut is not None
        before = cut.recorded_at if cut.recorded_at.tzinfo else cut.recorded_at.replace(tzinfo=UTC)
        done = archive(session, before, tmp_path / "archive", key[0])
    assert done is not None and (done.first_seq, done.last_seq) == (1, 119)
    assert verify_archive(done.path, key[1]) is None
    assert problem(database, key) == "intact"
    fill(5)
    assert problem(database, key) == "intact"
    with database.session() as session:
        assert session.scalar(select(AuditRecord.seq).order_by(AuditRecord.seq).limit(1)) == 120
        again = archive(session, datetime.now(UTC) + timedelta(days=1), tmp_path / "archive", key[0])
    assert again is not None and again.first_seq == 120
    assert verify_archive(again.path, key[1]) is None and problem(database, key) == "intact"

    lines = done.path.read_text().splitlines()
    lines[5] = lines[5].replace('"outcome": 0', '"outcome": 8')
    done.path.write_text("\n".join(lines) + "\n")
    assert verify_archive(done.path, key[1]) == "record 5: edited"


def test_records_deleted_without_an_archive_are_caught(database: Database, key: Key, fill: Fill) -> None:
    fill(10)
    with database.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq <= 3))
    assert problem(database, key).startswith("record 1: deleted")


def test_a_head_the_session_read_before_an_append_is_read_afresh_after_it(database: Database) -> None:
    with database.session() as session:
        append(session, entry(1))
    with database.session() as session:
        before = session.scalar(select(AuditHead).where(AuditHead.id == HEAD_ID))
        assert before is not None and before.seq == 1
        written = append(session, entry(2))
        after = session.scalar(select(AuditHead).where(AuditHead.id == HEAD_ID))
        assert after is not None and (after.seq, after.hash) == (2, written.hash)
