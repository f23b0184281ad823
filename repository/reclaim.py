"""Reclaiming blobs that no repository row references.

A submission stores its blobs before its rows commit (the bytes must be
durable before anything points at them). When the submission fails, the
blobs it stored and nothing else references are deleted at once; blobs that
other documents or instances share (content addressing stores equal bytes
once) stay. What a crash leaves behind (blobs whose rows never committed,
temporary files) is collected by `collect_garbage` (`xdshub storage gc`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from repository.blobstore import BlobStore
from repository.tables import DicomInstance, StoredDocument


def referenced(session: Session, addresses: Iterable[str]) -> set[str]:
    """Which of these blob addresses a committed or pending row of this session references."""
    wanted = sorted(set(addresses))
    if not wanted:
        return set()
    query = union(select(StoredDocument.sha256).where(StoredDocument.sha256.in_(wanted)),
                  select(DicomInstance.sha256).where(DicomInstance.sha256.in_(wanted)))
    return set(session.scalars(select(query.subquery().c[0])))


def reclaim_unreferenced(session: Session, store: BlobStore, addresses: Iterable[str]) -> list[str]:
    """Delete those of `addresses` that no row of this session's view references; answer the deleted ones."""
    candidates = set(addresses)
    keep = referenced(session, candidates)
    deleted = sorted(candidates - keep)
    for address in deleted:
        store.delete(address)
    return deleted


@dataclass(frozen=True)
class Collection:
    examined: int
    deleted: list[str]
    temporary_removed: int


def collect_garbage(session: Session, store: BlobStore, grace_seconds: float = 3600.0,
                    now: float | None = None) -> Collection:
    """Delete blobs no row references and older than the grace period, and stale temporary files.

    What a crash can leave: a blob stored by a submission whose rows never
    committed, or a temporary file of an interrupted write. The grace period
    keeps the blobs of submissions still in flight (stored, not yet committed).
    """
    cutoff = (time.time() if now is None else now) - grace_seconds
    old = [address for address, modified in store.listing() if modified < cutoff]
    deleted: list[str] = []
    examined = len(old)
    for start in range(0, len(old), 500):
        deleted += reclaim_unreferenced(session, store, old[start:start + 500])
    session.rollback()
    sweep = getattr(store, "sweep_temporary", None)
    removed = sweep(grace_seconds) if sweep is not None else 0
    return Collection(examined, deleted, removed)
