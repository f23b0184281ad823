"""Walking the audit chain: the first record that was edited, deleted, inserted or reordered.

Each record must carry seq = previous + 1, prev_hash = the previous record's
hash, and hash = the hash its own content gives (`hub.audit.chain`). The head
row must name the last record (records cut off the end are caught), and every
signed checkpoint must verify with the hub's public key and match the record
at its seq, so a chain recomputed wholesale by someone without the key is
caught at the first checkpoint after the change. Records are read in pages,
so memory stays flat on millions of records.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.chain import HEAD_ID, checkpoint_payload, record_hash
from hub.audit.tables import GENESIS_HASH, AuditArchive, AuditCheckpoint, AuditHead, AuditRecord

PAGE = 5000


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.what}"


@dataclass(frozen=True)
class Verification:
    records: int
    checkpoints: int
    problem: Problem | None
    last_seq: int = 0       # the last record walked

    @property
    def intact(self) -> bool:
        return self.problem is None


def _records(session: Session) -> Iterator[AuditRecord]:
    last = 0
    while True:
        page = list(session.scalars(select(AuditRecord).where(AuditRecord.seq > last)
                                    .order_by(AuditRecord.seq).limit(PAGE)))
        if not page:
            return
        yield from page
        last = page[-1].seq
        session.expunge_all()


def _walk(session: Session, start_seq: int, start_hash: str) -> tuple[int, int, str, Problem | None]:
    """(records seen, last seq, last hash, first problem), from the chain's start (genesis or last archive)."""
    expected_seq, prev_hash, count = start_seq + 1, start_hash, 0
    for record in _records(session):
        count += 1
        if record.seq != expected_seq:
            missing = expected_seq if record.seq == expected_seq + 1 else f"{expected_seq}-{record.seq - 1}"
            return count, record.seq, record.hash, Problem(expected_seq, f"deleted (records {missing} are missing)")
        if record.prev_hash != prev_hash:
            return count, record.seq, record.hash, Problem(
                record.seq, "does not follow the record before it (a record was inserted, deleted or reordered)")
        if record_hash(record) != record.hash:
            return count, record.seq, record.hash, Problem(record.seq, "edited (its content no longer gives its hash)")
        expected_seq, prev_hash = record.seq + 1, record.hash
    return count, expected_seq - 1, prev_hash, None


def verify_chain(session: Session, public_key: ec.EllipticCurvePublicKey) -> Verification:
    """Walk the whole chain in one snapshot of the database.

    Start a fresh transaction for it: on PostgreSQL it runs at REPEATABLE
    READ, so records appended while it walks neither show up half-way nor
    look like a chain cut short; SQLite transactions are serialised anyway.
    """
    from hub.audit.retention import chain_start

    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    start_seq, start_hash = chain_start(session)
    problem = _archive_problem(session, public_key)
    if problem is not None:
        return Verification(0, 0, problem, start_seq)
    count, last_seq, last_hash, problem = _walk(session, start_seq, start_hash)
    checkpoints = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
    if problem is None:
        head = session.scalar(select(AuditHead).where(AuditHead.id == HEAD_ID))
        head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
        if last_seq > head_seq:
            problem = Problem(head_seq + 1, f"inserted (the chain ends at {last_seq}, its head says {head_seq})")
        elif (head_seq, head_hash) != (last_seq, last_hash):
            problem = Problem(last_seq + 1, f"deleted (the chain ends at {last_seq}, its head says {head_seq})")
    if problem is None:
        problem = _check_checkpoints(session, checkpoints, public_key)
    return Verification(count, len(checkpoints), problem, last_seq)


def signature_valid(public_key: ec.EllipticCurvePublicKey, seq: int, chain_hash: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), checkpoint_payload(seq, chain_hash), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_problem(public_key: ec.EllipticCurvePublicKey, seq: int, chain_hash: str, signature: str,
                       record_hash: str | None) -> str | None:
    if not signature_valid(public_key, seq, chain_hash, signature):
        return f"record {seq}: its signed checkpoint does not verify with the hub's key"
    if record_hash != chain_hash:
        return f"record {seq}: differs from its signed checkpoint (the chain was rewritten up to here)"
    return None


def _archive_problem(session: Session, public_key: ec.EllipticCurvePublicKey) -> Problem | None:
    for base in session.scalars(select(AuditArchive).order_by(AuditArchive.seq)):
        if not signature_valid(public_key, base.seq, base.hash, base.signature):
            return Problem(base.seq, f"the signed start of the chain after archive {base.file_name} does not verify")
    return None


def _check_checkpoints(session: Session, checkpoints: list[AuditCheckpoint],
                       public_key: ec.EllipticCurvePublicKey) -> Problem | None:
    for checkpoint in checkpoints:
        record = session.get(AuditRecord, checkpoint.seq)
        text = checkpoint_problem(public_key, checkpoint.seq, checkpoint.hash, checkpoint.signature,
                                  record.hash if record is not None else None)
        if text is not None:
            return Problem(checkpoint.seq, text.split(": ", 1)[1])
    return None
