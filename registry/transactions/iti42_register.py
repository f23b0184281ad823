"""ITI-42 Register Document Set-b, Document Registry side (ITI TF-2b 3.42).

`register_document_set` validates a submission (ITI TF-3 4.1, 4.2; see
`registry.validation`), gives its symbolic ids fresh `urn:uuid:` ids
(ITI TF-3 4.2.3.1.1), checks it against the registry content
(ITI TF-2b 3.42.4.1.3) and stores it: objects Approved, version 1, lid = id.
Replacements deprecate what they replace and join its folders
(ITI TF-2b 3.42.4.1.3.5).

It never commits: the caller owns the transaction, so the submission and its
audit record commit together. Everything happens inside a SAVEPOINT, so a
failure leaves nothing in the session. The unique constraint on
(kind, unique_id) settles two concurrent submissions of one uniqueId: the
loser's flush fails and it is answered XDSDuplicateUniqueIdInRegistry.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.errors import (
    DeprecatedDocumentError,
    DuplicateUniqueIdInRegistry,
    PatientIdDoesNotMatch,
    RegistryMetadataError,
    ReplaceFailed,
    XdsError,
    XdsErrorList,
)
from hub.security.identity import Caller
from hub.settings import Settings
from registry.builders import new_id
from registry.model import Association, ExtrinsicObject, RegistryPackage, SubmitObjectsRequest
from registry.store import row_for
from registry.tables import RegistryObjectRow
from registry.validation import is_uuid_urn, validate_submission
from registry.vocabulary import (
    REGISTRY_PACKAGE_TYPE,
    REPLACING_TYPES,
    AssociationType,
    AvailabilityStatus,
    DocumentEntryScheme,
    ObjectKind,
)

APPROVED = AvailabilityStatus.APPROVED.value
DEPRECATED = AvailabilityStatus.DEPRECATED.value
HAS_MEMBER = AssociationType.HAS_MEMBER.value
REPLACING = frozenset(t.value for t in REPLACING_TYPES)
DOCUMENT = ObjectKind.DOCUMENT_ENTRY.value
FOLDER = ObjectKind.FOLDER.value


def register_document_set(session: Session, request: SubmitObjectsRequest, caller: Caller, settings: Settings,
                          now: datetime | None = None) -> None:
    """Register `request` for `caller` (ITI TF-2b 3.42.4.1.3); raise XdsError/XdsErrorList on refusal.

    `request` is not modified: the stored objects are a copy with resolved ids.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    validate_submission(request, now)
    submission = resolve_symbolic_ids(copy.deepcopy(request))
    stamp = now.strftime("%Y%m%d%H%M%S")
    _stamp_new_objects(submission, stamp)
    try:
        with session.begin_nested():
            _Registration(session, submission, caller, settings, now, stamp).run()
    except IntegrityError:
        # A concurrent submission committed the same uniqueId or entryUUID first.
        raise XdsErrorList([DuplicateUniqueIdInRegistry(
            "a uniqueId or entryUUID of the submission was registered concurrently by another submission",
            "SubmitObjectsRequest")]) from None


def resolve_symbolic_ids(request: SubmitObjectsRequest) -> SubmitObjectsRequest:
    """Replace every id that is not a urn:uuid, and every reference to it, by a fresh urn:uuid.

    ITI TF-3 4.2.3.1.1: a Document Source may use symbolic ids, which the
    registry replaces by UUIDs it assigns. Mutates and returns `request`.
    """
    mapping: dict[str, str] = {}

    def assign(ident: str) -> str:
        if is_uuid_urn(ident):
            return ident
        return mapping.setdefault(ident, new_id())

    for obj in request.objects:
        obj.id = assign(obj.id)
        for classification in obj.classifications:
            classification.id = assign(classification.id)
        for ident in obj.external_identifiers:
            ident.id = assign(ident.id)
    for obj in request.objects:
        for classification in obj.classifications:
            classification.classified_object = mapping.get(classification.classified_object,
                                                           classification.classified_object)
        for ident in obj.external_identifiers:
            ident.registry_object = mapping.get(ident.registry_object, ident.registry_object)
        if isinstance(obj, Association):
            obj.source = mapping.get(obj.source, obj.source)
            obj.target = mapping.get(obj.target, obj.target)
    return request


def _stamp_new_objects(request: SubmitObjectsRequest, stamp: str) -> None:
    """Status Approved, version 1, lid = id (ITI TF-3 4.2.3.1.8, 4.1.7); folders lastUpdateTime = now."""
    for obj in request.objects:
        obj.status = APPROVED
        obj.lid = obj.id
        obj.version = "1"
    for package in request.packages:
        package.object_type = package.object_type or REGISTRY_PACKAGE_TYPE
    for folder in request.folders:
        folder.slots["lastUpdateTime"] = [stamp]   # ITI TF-3 4.2.3.4.5: set by the registry


def _is_restricted(doc: ExtrinsicObject, codes: frozenset[str]) -> bool:
    return any(c.code in codes for c in doc.codes(DocumentEntryScheme.CONFIDENTIALITY_CODE))


class _Registration:
    """The registry checks and writes of one submission (inside the caller's SAVEPOINT)."""

    def __init__(self, session: Session, submission: SubmitObjectsRequest, caller: Caller, settings: Settings,
                 now: datetime, stamp: str) -> None:
        self.session = session
        self.submission = submission
        self.caller = caller
        self.now = now
        self.stamp = stamp
        self.restricted_codes = frozenset(settings.restricted_confidentiality_codes)
        self.patient = submission.submission_sets[0].patient_id
        self.new_ids = {o.id for o in submission.objects}
        self.documents = {d.id for d in submission.document_entries}
        self.errors: list[XdsError] = []
        self.existing: dict[str, RegistryObjectRow] = {}

    # -- checks ------------------------------------------------------------------
    def run(self) -> None:
        self._check_duplicates()
        self._load_references()
        for assoc in self.submission.associations:
            if assoc.association_type == HAS_MEMBER:
                self._check_has_member(assoc)
            elif assoc.association_type in {t.value for t in AssociationType}:
                self._check_relationship(assoc)
        self._check_double_replacement()
        if self.errors:
            raise XdsErrorList(self.errors)
        self._store()

    def _check_duplicates(self) -> None:
        """entryUUIDs and uniqueIds the registry already holds (ITI TF-2b 3.42.4.1.3.2)."""
        taken = self.session.scalars(select(RegistryObjectRow.id).where(RegistryObjectRow.id.in_(self.new_ids)))
        for ident in taken:
            self.errors.append(DuplicateUniqueIdInRegistry(f"entryUUID {ident} is already registered", ident))
        identified: list[ExtrinsicObject | RegistryPackage] = [*self.submission.document_entries,
                                                               *self.submission.packages]
        wanted: dict[tuple[str, str | None], str] = {
            (o.kind.value, o.unique_id): o.id for o in identified if o.unique_id}
        if not wanted:
            return
        rows = self.session.execute(select(RegistryObjectRow.kind, RegistryObjectRow.unique_id).where(
            RegistryObjectRow.unique_id.in_({u for _, u in wanted})))
        for kind, unique_id in rows:
            if (kind, unique_id) in wanted:
                self.errors.append(DuplicateUniqueIdInRegistry(
                    f"{kind} uniqueId {unique_id} is already registered", wanted[(kind, unique_id)]))

    def _load_references(self) -> None:
        """Rows named by associations that are not in the message and the caller may see."""
        ends = {e for a in self.submission.associations for e in (a.source, a.target)} - self.new_ids
        if not ends:
            return
        for row in self.session.scalars(select(RegistryObjectRow).where(RegistryObjectRow.id.in_(ends))):
            if not row.restricted or row.submitter_org_id == self.caller.organisation_id:
                self.existing[row.id] = row

    def _same_patient(self, row: RegistryObjectRow, assoc: Association) -> bool:
        if row.patient_id is not None and row.patient_id != self.patient:
            self.errors.append(PatientIdDoesNotMatch(
                f"Association {assoc.id}: {row.kind} {row.id} is for patient {row.patient_id}, "
                f"the submission for {self.patient} (ITI TF-2b 3.42.4.1.3.3)", assoc.id))
            return False
        return True

    def _unknown(self, assoc: Association, ident: str) -> None:
        self.errors.append(RegistryMetadataError(
            f"Association {assoc.id}: {ident} is neither in the submission nor in the registry", assoc.id))

    def _check_has_member(self, assoc: Association) -> None:
        """HasMember targets and folder sources outside the message (ITI TF-3 4.2.2.1)."""
        if assoc.source not in self.new_ids:
            folder = self.existing.get(assoc.source)
            if folder is None:
                self._unknown(assoc, assoc.source)
            elif folder.kind != FOLDER:
                self.errors.append(RegistryMetadataError(
                    f"Association {assoc.id}: HasMember source {folder.id} is a {folder.kind}, not a Folder",
                    assoc.id))
            else:
                self._same_patient(folder, assoc)
        if assoc.target in self.new_ids:
            return
        target = self.existing.get(assoc.target)
        if target is None:
            self._unknown(assoc, assoc.target)
            return
        if target.kind == DOCUMENT and target.status != APPROVED:
            self.errors.append(DeprecatedDocumentError(
                f"Association {assoc.id}: DocumentEntry {target.id} is not Approved", assoc.id))
        self._same_patient(target, assoc)

    def _check_relationship(self, assoc: Association) -> None:
        """RPLC, APND, XFRM, XFRM_RPLC, signs: target an Approved entry of the patient (ITI TF-2b 3.42.4.1.3.5)."""
        if assoc.target in self.new_ids:
            return   # signs of a document of the same submission (validated)
        replacing = assoc.association_type in REPLACING
        target = self.existing.get(assoc.target)
        if target is None or target.kind != DOCUMENT:
            message = f"Association {assoc.id}: target {assoc.target} is not a DocumentEntry of the registry"
            self.errors.append(ReplaceFailed(message, assoc.id) if replacing
                               else RegistryMetadataError(message, assoc.id))
            return
        if target.status != APPROVED:
            message = f"Association {assoc.id}: DocumentEntry {target.id} is not Approved"
            self.errors.append(ReplaceFailed(message, assoc.id) if replacing
                               else DeprecatedDocumentError(message, assoc.id))
        self._same_patient(target, assoc)

    def _check_double_replacement(self) -> None:
        targets = Counter(a.target for a in self.submission.associations if a.association_type in REPLACING)
        for target, count in targets.items():
            if count > 1:
                self.errors.append(ReplaceFailed(f"DocumentEntry {target} is replaced {count} times", target))

    # -- writes --------------------------------------------------------------------
    def _store(self) -> None:
        restricted = {d.id for d in self.submission.document_entries if _is_restricted(d, self.restricted_codes)}
        restricted |= {row.id for row in self.existing.values() if row.restricted}
        org = self.caller.organisation_id
        for obj in self.submission.objects:
            if isinstance(obj, Association):
                hidden = obj.source in restricted or obj.target in restricted
            else:
                hidden = obj.id in restricted
            self.session.add(row_for(obj, org, hidden, self.now))
        for assoc in self.submission.associations:
            if assoc.association_type == HAS_MEMBER and assoc.source in self.existing:
                self.existing[assoc.source].last_update_time = self.stamp   # ITI TF-3 4.2.3.4.5
            if assoc.association_type in REPLACING:
                self._replace(assoc.target, assoc.source, assoc.source in restricted)
        self.session.flush()

    def _replace(self, replaced: str, replacement: str, restricted: bool) -> None:
        """Deprecate `replaced`; `replacement` joins its folders (ITI TF-2b 3.42.4.1.3.5)."""
        self.existing[replaced].status = DEPRECATED
        memberships = self.session.scalars(select(RegistryObjectRow).where(
            RegistryObjectRow.kind == ObjectKind.ASSOCIATION.value,
            RegistryObjectRow.association_type == HAS_MEMBER,
            RegistryObjectRow.target_object == replaced,
            RegistryObjectRow.status == APPROVED)).all()
        sources = {m.source_object for m in memberships if m.source_object}
        if not sources:
            return
        folders = self.session.scalars(select(RegistryObjectRow).where(
            RegistryObjectRow.id.in_(sources), RegistryObjectRow.kind == FOLDER)).all()
        for folder in folders:
            ident = new_id()
            membership = Association(id=ident, lid=ident, status=APPROVED, association_type=HAS_MEMBER,
                                     source=folder.id, target=replacement)
            self.session.add(row_for(membership, self.caller.organisation_id, restricted, self.now))
            folder.last_update_time = self.stamp
