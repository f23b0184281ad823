"""Appending to the audit chain, in the caller's database transaction.

`append` takes a rendered audit message and its indexed fields, locks the
chain head (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers
already), and writes the record with seq = head + 1 and
hash = SHA-256(prev_hash, canonical content). It never commits: the record
commits or rolls back with the effect it describes (DESIGN: "Every
transaction writes one audit record, in the same database transaction where
it changes data").
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from hub.audit.tables import GENESIS_HASH, AuditCheckpoint, AuditHead, AuditRecord
from hub.clock import as_utc

CHECKPOINT_EVERY = 100
HEAD_ID = 1


@dataclass(frozen=True)
class Entry:
    """What one audit record says: the message and the fields compliance queries filter on."""

    event_id: str
    event_type: str
    action: str
    outcome: int
    message: str
    organisation_oid: str = ""
    user_id: str = ""
    client_address: str = ""
    patient_id: str = ""
    study_uid: str = ""


def content_hash(prev_hash: str, seq: int, recorded_at: datetime, entry: Entry) -> str:
    """SHA-256 over the previous hash and the record's content, in a canonical JSON form."""
    # SQLite gives timestamps back without their zone; they were written in UTC.
    stamp = as_utc(recorded_at)
    canonical = json.dumps({
        "seq": seq, "recorded_at": stamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "event_id": entry.event_id, "event_type": entry.event_type, "action": entry.action,
        "outcome": entry.outcome, "organisation_oid": entry.organisation_oid, "user_id": entry.user_id,
        "client_address": entry.client_address, "patient_id": entry.patient_id, "study_uid": entry.study_uid,
        "message": entry.message,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def record_hash(record: AuditRecord) -> str:
    """The hash a stored record should carry, recomputed from its columns."""
    entry = Entry(record.event_id, record.event_type, record.action, record.outcome, record.message,
                  record.organisation_oid, record.user_id, record.client_address, record.patient_id,
                  record.study_uid)
    return content_hash(record.prev_hash, record.seq, record.recorded_at, entry)


def checkpoint_payload(seq: int, chain_hash: str) -> bytes:
    return f"xdshub-audit-checkpoint:{seq}:{chain_hash}".encode()


def sign_checkpoint(key_path: Path, seq: int, chain_hash: str) -> str:
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key")
    return base64.b64encode(key.sign(checkpoint_payload(seq, chain_hash), ec.ECDSA(hashes.SHA256()))).decode()


# Core statements on the tables, run on the session's connection: an append runs on every request, and the
# ORM's unit of work (or an ORM-enabled INSERT) costs several times the statements themselves.
_RECORDS, _HEADS, _CHECKPOINTS = (cast(Table, AuditRecord.__table__), cast(Table, AuditHead.__table__),
                                  cast(Table, AuditCheckpoint.__table__))
_HEAD = select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.id == HEAD_ID).with_for_update()
_INSERT_RECORD = insert(_RECORDS)
_MOVE_HEAD = update(_HEADS).where(_HEADS.c.id == HEAD_ID)


def _head(session: Session) -> tuple[int, str]:
    """The chain head's sequence number and hash, locked for this transaction (created on first use,
    race-free)."""
    head = session.connection().execute(_HEAD).first()
    if head is None:
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        session.execute(insert(AuditHead).values(id=HEAD_ID, seq=0, hash=GENESIS_HASH)
                        .on_conflict_do_nothing(index_elements=["id"]))
        head = session.connection().execute(_HEAD).first()
        assert head is not None
    return int(head[0]), str(head[1])


def append(session: Session, entry: Entry, signing_key: Path | None = None,
           now: datetime | None = None) -> AuditRecord:
    """Write the next record of the chain in the caller's transaction (no commit); answer it (not attached
    to the session)."""
    head_seq, head_hash = _head(session)
    recorded_at = (now or datetime.now(UTC)).astimezone(UTC)
    seq = head_seq + 1
    chain_hash = content_hash(head_hash, seq, recorded_at, entry)
    values = dict(seq=seq, recorded_at=recorded_at, event_id=entry.event_id, event_type=entry.event_type,
                  action=entry.action, outcome=entry.outcome, organisation_oid=entry.organisation_oid,
                  user_id=entry.user_id, client_address=entry.client_address, patient_id=entry.patient_id,
                  study_uid=entry.study_uid, message=entry.message, prev_hash=head_hash, hash=chain_hash)
    session.flush()              # the ORM's pending rows first, as an ORM flush would order them
    connection = session.connection()
    connection.execute(_INSERT_RECORD, values)
    connection.execute(_MOVE_HEAD, {"seq": seq, "hash": chain_hash})
    loaded = session.identity_map.get(session.identity_key(AuditHead, HEAD_ID))
    if loaded is not None:       # the ORM read the head earlier in this session: not the head any more
        session.expire(loaded)
    if signing_key is not None and seq % CHECKPOINT_EVERY == 0:
        connection.execute(insert(_CHECKPOINTS), dict(
            seq=seq, hash=chain_hash, signature=sign_checkpoint(signing_key, seq, chain_hash),
            signed_at=recorded_at))
    return AuditRecord(**values)
