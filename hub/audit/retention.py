"""Retention: moving old audit records to an archive file without breaking verification of what remains.

`archive(session, before, folder, key)` writes every record recorded before
`before` (a prefix of the chain) and their checkpoints to a JSON-lines file,
durably (temporary file, fsync, rename), then deletes them and stores the
last archived record's seq and hash, signed, in `audit_archives`: the chain
in the database now starts there (`hub.audit.verify`). `verify_archive`
walks an archive file the same way the database chain is walked, from the
hash its header names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.audit.chain import Entry, content_hash, sign_checkpoint
from hub.audit.tables import GENESIS_HASH, AuditArchive, AuditCheckpoint, AuditRecord
from hub.clock import as_utc

FORMAT = "xdshub-audit-archive/1"
ENTRY_FIELDS = tuple(Entry.__dataclass_fields__)
COLUMNS = ("seq", "event_id", "event_type", "action", "outcome", "organisation_oid", "user_id", "client_address",
           "patient_id", "study_uid", "message", "prev_hash", "hash")


@dataclass(frozen=True)
class Archived:
    path: Path
    first_seq: int
    last_seq: int


def chain_start(session: Session) -> tuple[int, str]:
    """(seq, hash) the chain in the database continues from: the last archive, or the genesis."""
    base = session.scalar(select(AuditArchive).order_by(AuditArchive.seq.desc()).limit(1))
    return (base.seq, base.hash) if base is not None else (0, GENESIS_HASH)


def _stamp(value: datetime) -> str:
    return as_utc(value).astimezone(UTC).isoformat(timespec="microseconds")


def _lines(session: Session, first: int, last: int, prev_hash: str) -> Iterator[str]:
    yield json.dumps({"format": FORMAT, "first_seq": first, "last_seq": last, "prev_hash": prev_hash})
    for record in session.scalars(select(AuditRecord).where(AuditRecord.seq.between(first, last))
                                  .order_by(AuditRecord.seq)):
        row = {name: getattr(record, name) for name in COLUMNS}
        row["recorded_at"] = _stamp(record.recorded_at)
        yield json.dumps(row, ensure_ascii=False)
    for checkpoint in session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.seq.between(first, last))):
        yield json.dumps({"checkpoint": {"seq": checkpoint.seq, "hash": checkpoint.hash,
                                         "signature": checkpoint.signature}})


def archive(session: Session, before: datetime, folder: Path, signing_key: Path) -> Archived | None:
    """Move the records older than `before` to a new archive file in `folder`; None when there are none."""
    start_seq, start_hash = chain_start(session)
    last = session.scalar(select(func.max(AuditRecord.seq)).where(AuditRecord.recorded_at < before))
    if last is None:
        return None
    # A prefix of the chain only: stop before the first record that is not old enough.
    younger = session.scalar(select(func.min(AuditRecord.seq)).where(AuditRecord.recorded_at >= before))
    if younger is not None and younger <= last:
        last = younger - 1
    if last <= start_seq:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"audit-{start_seq + 1:012d}-{last:012d}.jsonl"
    temporary = path.with_suffix(".part")
    with temporary.open("w", encoding="utf-8") as out:
        for line in _lines(session, start_seq + 1, last, start_hash):
            out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    last_hash = session.scalar(select(AuditRecord.hash).where(AuditRecord.seq == last))
    assert last_hash is not None
    session.add(AuditArchive(seq=last, hash=last_hash, signature=sign_checkpoint(signing_key, last, last_hash),
                             file_name=path.name, archived_at=datetime.now(UTC)))
    session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq <= last))
    session.execute(delete(AuditRecord).where(AuditRecord.seq <= last))
    return Archived(path, start_seq + 1, last)


def verify_archive(path: Path, public_key: ec.EllipticCurvePublicKey) -> str | None:
    """The first problem of an archive file (same rules as the database chain), or None when intact."""
    from hub.audit.verify import checkpoint_problem

    with path.open(encoding="utf-8") as stream:
        header = json.loads(stream.readline())
        if header.get("format") != FORMAT:
            return f"{path.name} is not an xdshub audit archive"
        expected, prev_hash = header["first_seq"], header["prev_hash"]
        hashes: dict[int, str] = {}
        for line in stream:
            item = json.loads(line)
            if "checkpoint" in item:
                point = item["checkpoint"]
                problem = checkpoint_problem(public_key, point["seq"], point["hash"], point["signature"],
                                             hashes.get(point["seq"]))
                if problem:
                    return problem
                continue
            if item["seq"] != expected:
                return f"record {expected}: deleted from the archive"
            if item["prev_hash"] != prev_hash:
                return f"record {item['seq']}: does not follow the record before it"
            recorded = datetime.fromisoformat(item["recorded_at"])
            entry = Entry(**{name: item[name] for name in ENTRY_FIELDS})
            if content_hash(item["prev_hash"], item["seq"], recorded, entry) != item["hash"]:
                return f"record {item['seq']}: edited"
            hashes[item["seq"]] = prev_hash = item["hash"]
            expected += 1
    if expected - 1 != header["last_seq"]:
        return f"record {expected}: deleted from the archive (it ends at {expected - 1}, its header says " \
               f"{header['last_seq']})"
    return None
