"""Who may see a DICOM instance the hub holds: one rule for RAD-69, QIDO-RS, WADO-RS and every later reader.

An instance is visible to

- the organisation that stored it (`DicomInstance.submitter_org_id`), and
- anyone who may see a registered manifest (KOS) referencing it: the
  registry's confidentiality rule applied to the manifests this repository
  holds (`StoredDocument.restricted`: confidentialityCode R or V, visible
  only to the manifest's submitter).

Two forms of the same rule: `visible_clause(caller)`, a SQL condition on
`dicom_instances` rows for queries that select many instances (QIDO-RS,
WADO-RS at study or series level); and `VisibleInstances`, the per-row check
for callers that name instances one by one (RAD-69), looked up in batches.
Whatever the caller may not see is answered exactly like what the hub does
not hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from hub.security.identity import Caller
from repository.tables import DicomInstance, ManifestReference, StoredDocument

__all__ = ["BATCH", "VisibleInstances", "batches", "held_instances", "shared_with", "visible_clause", "visible_to"]

BATCH = 500   # UIDs per IN (...) list, well inside SQLite's parameter limit


def batches(uids: list[str]) -> list[list[str]]:
    return [uids[start:start + BATCH] for start in range(0, len(uids), BATCH)]


def _manifest_visible_to(organisation_id: int | None) -> ColumnElement[bool]:
    """A manifest that organisation may see: not restricted, or submitted by it."""
    return or_(StoredDocument.restricted.is_(False), StoredDocument.submitter_org_id == organisation_id)


def visible_clause(caller: Caller) -> ColumnElement[bool]:
    """The SQL condition on `DicomInstance` rows the caller may see (stored by it, or shared by a manifest)."""
    return visible_to(caller.organisation_id)


@lru_cache(maxsize=1024)
def visible_to(organisation_id: int | None) -> ColumnElement[bool]:
    """`visible_clause` for the caller of that organisation (None: a caller of none)."""
    # Built once per organisation: building it costs more than running the query it filters (QIDO-RS, WADO-RS
    # on every request). SQL expressions are immutable, so one may serve every statement and thread.
    shared = exists(
        select(ManifestReference.id)
        .join(StoredDocument, StoredDocument.unique_id == ManifestReference.manifest_unique_id)
        .where(ManifestReference.sop_instance_uid == DicomInstance.sop_instance_uid,
               _manifest_visible_to(organisation_id)))
    return or_(DicomInstance.submitter_org_id == organisation_id, shared)


def held_instances(session: Session, uids: Iterable[str]) -> dict[str, DicomInstance]:
    """Those of `uids` this hub holds, visible or not, in one query per batch."""
    return {i.sop_instance_uid: i for batch in batches(sorted(set(uids)))
            for i in session.scalars(select(DicomInstance).where(DicomInstance.sop_instance_uid.in_(batch)))}


def shared_with(session: Session, uids: Iterable[str], caller: Caller) -> set[str]:
    """Those of `uids` a manifest the caller may see references."""
    shared: set[str] = set()
    for batch in batches(sorted(set(uids))):
        shared.update(session.scalars(
            select(ManifestReference.sop_instance_uid).distinct()
            .join(StoredDocument, StoredDocument.unique_id == ManifestReference.manifest_unique_id)
            .where(ManifestReference.sop_instance_uid.in_(batch), _manifest_visible_to(caller.organisation_id))))
    return shared


class VisibleInstances:
    """The per-row form of the rule for instances named one by one: load once, then ask `get(uid)`."""

    def __init__(self, session: Session, caller: Caller, uids: Iterable[str]) -> None:
        self.caller = caller
        self.held = held_instances(session, uids)
        others = [uid for uid, i in self.held.items() if i.submitter_org_id != caller.organisation_id]
        self.shared = shared_with(session, others, caller)

    def visible(self, instance: DicomInstance) -> bool:
        return instance.submitter_org_id == self.caller.organisation_id or instance.sop_instance_uid in self.shared

    def get(self, uid: str) -> DicomInstance | None:
        """The instance when the hub holds it and the caller may see it, else None (the two read the same)."""
        instance = self.held.get(uid)
        return instance if instance is not None and self.visible(instance) else None
