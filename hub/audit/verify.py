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
from hub.audit.tables import GENESIS_HASH, AuditCheckpoint, AuditHead, AuditRecord

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


def _walk(session: Session) -> tuple[int, int, str, Problem | None]:
    """(records seen, last seq, last hash, first problem)."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
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
    count, last_seq, last_hash, problem = _walk(session)
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
    return Verification(count, len(checkpoints), problem)


def _check_checkpoints(session: Session, checkpoints: list[AuditCheckpoint],
                       public_key: ec.EllipticCurvePublicKey) -> Problem | None:
    for checkpoint in checkpoints:
        try:
            public_key.verify(base64.b64decode(checkpoint.signature),
                              checkpoint_payload(checkpoint.seq, checkpoint.hash), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return Problem(checkpoint.seq, "its signed checkpoint does not verify with the hub's key")
        record = session.get(AuditRecord, checkpoint.seq)
        if record is None or record.hash != checkpoint.hash:
            return Problem(checkpoint.seq, "differs from its signed checkpoint (the chain was rewritten up to here)")
    return None
