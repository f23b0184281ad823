"""The audit chain's verification status, as the compliance console shows it.

Each walk of the chain (`xdshub audit verify`, the console's "Verify now")
is remembered in `audit_verifications`. The console shows the latest: when
it ran, how far it reached, intact or the first bad record, and how many
records were appended since. A small chain (at most AUTO_VERIFY_RECORDS
records) is walked again when its latest verification is older than
STALE_AFTER, so the page is current without costing a walk per view; a
large one is walked on request only (1,000,000 records take about 25 s, see
bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.chain import HEAD_ID
from hub.audit.retention import chain_start
from hub.audit.tables import AuditHead, AuditVerification
from hub.audit.verify import Verification, verify_chain
from hub.clock import as_utc

AUTO_VERIFY_RECORDS = 20_000
STALE_AFTER = timedelta(minutes=5)


class SigningKeyError(ValueError):
    """The hub's signing key is missing or not an EC key: checkpoints cannot be checked."""


@dataclass(frozen=True)
class ChainStatus:
    head_seq: int                       # the last record now
    verified_at: datetime | None        # None: never verified
    verified_through: int               # the last record the latest walk covered
    records: int
    checkpoints: int
    problem: str                        # empty when intact

    @property
    def intact(self) -> bool | None:
        return None if self.verified_at is None else not self.problem

    @property
    def appended_since(self) -> int:
        return max(0, self.head_seq - self.verified_through)


def signing_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """The public half of the hub's signing key (PEM file at `path`), which checks the signed checkpoints."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the hub's signing key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"the signing key {path} is not an EC key")
    return key.public_key()


def _head_seq(session: Session) -> int:
    head = session.scalar(select(AuditHead).where(AuditHead.id == HEAD_ID))
    return head.seq if head is not None else 0


def verify_and_remember(session: Session, public_key: ec.EllipticCurvePublicKey,
                        now: datetime | None = None) -> Verification:
    """Walk the chain and remember the outcome (the caller commits).

    The walk runs in its own snapshot (see `verify_chain`); use a session of
    its own, not one holding objects you still need: the walk detaches them.
    """
    result = verify_chain(session, public_key)
    session.add(AuditVerification(verified_at=now or datetime.now(UTC), last_seq=result.last_seq,
                                  records=result.records, checkpoints=result.checkpoints,
                                  problem=str(result.problem) if result.problem else ""))
    return result


def latest(session: Session) -> AuditVerification | None:
    return session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1))


def chain_status(session: Session) -> ChainStatus:
    head_seq = _head_seq(session)
    last = latest(session)
    if last is None:
        return ChainStatus(head_seq, None, 0, 0, 0, "")
    return ChainStatus(head_seq, as_utc(last.verified_at), last.last_seq, last.records, last.checkpoints,
                       last.problem)


def needs_walk(session: Session, now: datetime | None = None) -> bool:
    """True when the chain is small enough to walk on a page view and its latest walk is stale."""
    now = now or datetime.now(UTC)
    start_seq, _ = chain_start(session)
    if _head_seq(session) - start_seq > AUTO_VERIFY_RECORDS:
        return False
    last = latest(session)
    return last is None or now - as_utc(last.verified_at) > STALE_AFTER
