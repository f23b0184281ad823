"""ITI-42 Register Document Set-b, Document Registry side (ITI TF-2b 3.42).

`register_document_set` validates a submission (ITI TF-3 4.1, 4.2; see
`registry.validation`), gives its symbolic ids fresh `urn:uuid:` ids
(ITI TF-3 4.2.3.1.1), checks it against the registry content
(ITI TF-2b 3.42.4.1.3) and stores it: objects Approved, version 1, lid = id.
A replacement (RPLC, XFRM_RPLC) deprecates what it replaces together with the
addenda and transformations of it, and joins the replaced entry's folders
(ITI TF-2b 3.42.4.1.3.5).

Error codes (ITI TF-3 Table 4.2.4.1-2): an association end that is neither in
the message nor in the registry is UnresolvedReferenceException; a relationship
or membership naming a Deprecated entry is XDSRegistryDeprecatedDocumentError
(the table marks XDSReplaceFailed deprecated, pointing to 3.42.4.1.3.5); an
entry of another patient is XDSPatientIdDoesNotMatch; a DocumentEntry uniqueId
the registry holds with another hash or size is XDSNonIdenticalHash /
XDSNonIdenticalSize. The same document registered again (same uniqueId, hash
and size) is refused with XDSDuplicateUniqueIdInRegistry: this registry keeps
one entry per uniqueId, enforced by a unique index, where ITI TF-3 would let a
registry accept the copy.

It never commits: the caller owns the transaction, so the submission and its
audit record commit together. Everything happens inside a SAVEPOINT, so a
failure leaves nothing in the session. Entries the submission relates to are
locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), so
two concurrent replacements of one entry cannot both succeed, and the unique
index on (kind, unique_id) settles two concurrent submissions of one
uniqueId: the loser's flush fails and it is answered
XDSDuplicateUniqueIdInRegistry.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.errors import (
    DeprecatedDocumentError,
    DuplicateUniqueIdInRegistry,
    NonIdenticalHash,
    NonIdenticalSize,
    PatientIdDoesNotMatch,
    RegistryMetadataError,
    UnresolvedReference,
    XdsError,
    XdsErrorList,
)
from hub.federation.patients import translate_submission
from hub.security.identity import Caller
from hub.settings import Settings
from registry.builders import new_id
from registry.model import AnyObject, Association, ExtrinsicObject, RegistryPackage, SubmitObjectsRequest
from registry.store import insert_objects
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
# What a replacement deprecates along with the replaced entry (ITI TF-2b 3.42.4.1.3.5).
DEPENDENTS = (AssociationType.APND.value, AssociationType.XFRM.value)
DOCUMENT = ObjectKind.DOCUMENT_ENTRY.value
FOLDER = ObjectKind.FOLDER.value
ASSOCIATION = ObjectKind.ASSOCIATION.value


def register_document_set(session: Session, request: SubmitObjectsRequest, caller: Caller, settings: Settings,
                          now: datetime | None = None) -> None:
    """Register `request` for `caller` (ITI TF-2b 3.42.4.1.3); raise XdsError/XdsErrorList on refusal.

    `request` is not modified: the stored objects are copies with resolved ids.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    validate_submission(request, now)
    submission = _working_copy(request)
    stamp = now.strftime("%Y%m%d%H%M%S")
    _stamp_new_objects(submission, stamp)
    # Local patient ids to the affinity domain's; an unknown patient is XDSUnknownPatientId.
    translate_submission(session, submission, caller.organisation_id, settings)
    try:
        with session.begin_nested():
            _Registration(session, submission, caller, settings, now, stamp).run()
    except IntegrityError as exc:
        if not _is_unique_violation(exc):
            raise
        # A concurrent submission committed the same uniqueId or entryUUID first.
        raise XdsErrorList([DuplicateUniqueIdInRegistry(
            "a uniqueId or entryUUID of the submission was registered concurrently by another submission",
            "SubmitObjectsRequest")]) from None


def _working_copy(request: SubmitObjectsRequest) -> SubmitObjectsRequest:
    """The objects to store, leaving `request` as the caller gave it.

    Symbolic ids change ids inside nested objects, so that takes a deep copy.
    A submission with urn:uuid ids only (the usual case) changes nothing but
    the top-level attributes `_stamp_new_objects` sets, so a shallow copy of
    each object (with its own slots) is enough, and far cheaper.
    """
    nested = [i for o in request.objects for i in (*(c.id for c in o.classifications),
                                                  *(e.id for e in o.external_identifiers))]
    if not all(is_uuid_urn(i) for i in (*(o.id for o in request.objects), *nested)):
        return resolve_symbolic_ids(copy.deepcopy(request))
    objects = [copy.copy(o) for o in request.objects]
    for obj in objects:
        obj.slots = dict(obj.slots)
    return SubmitObjectsRequest(objects, list(request.object_refs))


def _is_unique_violation(exc: IntegrityError) -> bool:
    """A unique index refused a row (PostgreSQL SQLSTATE 23505, SQLite "UNIQUE constraint failed")."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


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


def is_restricted(doc: ExtrinsicObject, codes: frozenset[str]) -> bool:
    """The confidentiality rule: an entry with one of these codes is visible to its submitter only."""
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
        self.errors: list[XdsError] = []
        self.existing: dict[str, RegistryObjectRow] = {}

    # -- checks ------------------------------------------------------------------
    def run(self) -> None:
        self._check_duplicates()
        self._load_references()
        for assoc in self.submission.associations:
            if assoc.association_type == HAS_MEMBER:
                self._check_has_member(assoc)
            else:
                self._check_relationship(assoc)
        if self.errors:
            raise XdsErrorList(self.errors)
        self._store()

    def _check_duplicates(self) -> None:
        """entryUUIDs and uniqueIds the registry already holds (ITI TF-2b 3.42.4.1.3.2, ITI TF-3 4.2.4.1)."""
        taken = self.session.scalars(select(RegistryObjectRow.id).where(RegistryObjectRow.id.in_(self.new_ids)))
        for ident in taken:
            self.errors.append(DuplicateUniqueIdInRegistry(f"entryUUID {ident} is already registered", ident))
        identified: list[ExtrinsicObject | RegistryPackage] = [*self.submission.document_entries,
                                                               *self.submission.packages]
        wanted: dict[tuple[str, str | None], ExtrinsicObject | RegistryPackage] = {
            (o.kind.value, o.unique_id): o for o in identified if o.unique_id}
        if not wanted:
            return
        rows = self.session.execute(select(
            RegistryObjectRow.kind, RegistryObjectRow.unique_id, RegistryObjectRow.hash, RegistryObjectRow.size,
        ).where(RegistryObjectRow.unique_id.in_({u for _, u in wanted})))
        for kind, unique_id, stored_hash, stored_size in rows:
            obj = wanted.get((kind, unique_id))
            if obj is None:
                continue
            if isinstance(obj, ExtrinsicObject) and self._differs(obj, stored_hash, stored_size):
                continue
            self.errors.append(DuplicateUniqueIdInRegistry(
                f"{kind} uniqueId {unique_id} is already registered", obj.id))

    def _differs(self, doc: ExtrinsicObject, stored_hash: str | None, stored_size: int | None) -> bool:
        """A document uniqueId submitted again with other content (ITI TF-3 Table 4.2.4.1-2)."""
        new_hash, new_size = doc.slot_value("hash"), doc.slot_value("size")
        if stored_hash and new_hash and stored_hash.lower() != new_hash.lower():
            self.errors.append(NonIdenticalHash(
                f"DocumentEntry uniqueId {doc.unique_id} is registered with hash {stored_hash}, "
                f"submitted with {new_hash}", doc.unique_id or doc.id))
            return True
        if stored_size is not None and new_size and new_size.isdigit() and int(new_size) != stored_size:
            self.errors.append(NonIdenticalSize(
                f"DocumentEntry uniqueId {doc.unique_id} is registered with size {stored_size}, "
                f"submitted with {new_size}", doc.unique_id or doc.id))
            return True
        return False

    def _load_references(self) -> None:
        """Lock and load the rows associations name outside the message that the caller may see."""
        ends = {e for a in self.submission.associations for e in (a.source, a.target)} - self.new_ids
        if not ends:
            return
        rows = self.session.scalars(
            select(RegistryObjectRow).where(RegistryObjectRow.id.in_(ends)).order_by(RegistryObjectRow.id)
            .with_for_update().execution_options(populate_existing=True))
        for row in rows:
            if not row.restricted or row.submitter_org_id == self.caller.organisation_id:
                self.existing[row.id] = row

    def _same_patient(self, row: RegistryObjectRow, assoc: Association) -> None:
        if row.patient_id is not None and row.patient_id != self.patient:
            self.errors.append(PatientIdDoesNotMatch(
                f"Association {assoc.id}: {row.kind} {row.id} is for patient {row.patient_id}, "
                f"the submission for {self.patient} (ITI TF-2b 3.42.4.1.3.3)", assoc.id))

    def _unresolved(self, assoc: Association, ident: str) -> None:
        self.errors.append(UnresolvedReference(
            f"Association {assoc.id}: {ident} is neither in the submission nor in the registry "
            "(ITI TF-3 Table 4.2.4.1-2)", assoc.id))

    def _check_has_member(self, assoc: Association) -> None:
        """HasMember targets and folder sources outside the message (ITI TF-3 4.2.2.1)."""
        if assoc.source not in self.new_ids:
            folder = self.existing.get(assoc.source)
            if folder is None:
                self._unresolved(assoc, assoc.source)
            elif folder.kind != FOLDER:
                self.errors.append(RegistryMetadataError(
                    f"Association {assoc.id}: HasMember source {folder.id} is a {folder.kind}, not a Folder "
                    "(ITI TF-3 4.2.2.1)", assoc.id))
            else:
                self._same_patient(folder, assoc)
        if assoc.target in self.new_ids:
            return
        target = self.existing.get(assoc.target)
        if target is None:
            self._unresolved(assoc, assoc.target)
            return
        if target.kind == DOCUMENT and target.status != APPROVED:
            self.errors.append(DeprecatedDocumentError(
                f"Association {assoc.id}: DocumentEntry {target.id} is Deprecated", assoc.id))
        self._same_patient(target, assoc)

    def _check_relationship(self, assoc: Association) -> None:
        """RPLC, APND, XFRM, XFRM_RPLC, signs: target an Approved entry of the patient (ITI TF-2b 3.42.4.1.3.5)."""
        if assoc.target in self.new_ids:
            return   # signs of a document of the same submission (validated)
        target = self.existing.get(assoc.target)
        if target is None:
            self._unresolved(assoc, assoc.target)
            return
        if target.kind != DOCUMENT:
            self.errors.append(RegistryMetadataError(
                f"Association {assoc.id}: target {target.id} is a {target.kind}, not a DocumentEntry "
                "(ITI TF-3 4.2.2.2)", assoc.id))
            return
        if target.status != APPROVED:
            self.errors.append(DeprecatedDocumentError(
                f"Association {assoc.id}: DocumentEntry {target.id} is Deprecated (ITI TF-2b 3.42.4.1.3.5)",
                assoc.id))
        self._same_patient(target, assoc)

    # -- writes --------------------------------------------------------------------
    def _store(self) -> None:
        restricted = {d.id for d in self.submission.document_entries if is_restricted(d, self.restricted_codes)}
        restricted |= {row.id for row in self.existing.values() if row.restricted}
        insert_objects(self.session, [
            (obj, obj.source in restricted or obj.target in restricted if isinstance(obj, Association)
             else obj.id in restricted) for obj in self.submission.objects],
            self.caller.organisation_id, self.now)
        for assoc in self.submission.associations:
            if assoc.association_type == HAS_MEMBER and assoc.source in self.existing:
                self.existing[assoc.source].last_update_time = self.stamp   # ITI TF-3 4.2.3.4.5
            if assoc.association_type in REPLACING:
                self._replace(assoc.target, assoc.source, assoc.source in restricted)
        self.session.flush()

    def _replace(self, replaced: str, replacement: str, restricted: bool) -> None:
        """Deprecate `replaced`, its addenda and transformations; `replacement` joins its folders.

        ITI TF-2b 3.42.4.1.3.5. Only memberships that are not already part
        of the submission are added.
        """
        self._deprecate_with_dependents(replaced)
        memberships = self.session.scalars(select(RegistryObjectRow.source_object).where(
            RegistryObjectRow.kind == ASSOCIATION,
            RegistryObjectRow.association_type == HAS_MEMBER,
            RegistryObjectRow.target_object == replaced,
            RegistryObjectRow.status == APPROVED)).all()
        already = {a.source for a in self.submission.associations
                   if a.association_type == HAS_MEMBER and a.target == replacement}
        sources = {m for m in memberships if m} - already
        if not sources:
            return
        folders = self.session.scalars(select(RegistryObjectRow).where(
            RegistryObjectRow.id.in_(sources), RegistryObjectRow.kind == FOLDER)).all()
        memberships_added: list[tuple[AnyObject, bool]] = []
        for folder in folders:
            ident = new_id()
            memberships_added.append((Association(id=ident, lid=ident, status=APPROVED, association_type=HAS_MEMBER,
                                                  source=folder.id, target=replacement), restricted))
            folder.last_update_time = self.stamp
        insert_objects(self.session, memberships_added, self.caller.organisation_id, self.now)

    def _deprecate_with_dependents(self, replaced: str) -> None:
        """The replaced entry and, transitively, the Approved entries that append to or transform it."""
        self.existing[replaced].status = DEPRECATED
        pending, seen = [replaced], {replaced}
        while pending:
            dependents = self.session.scalars(select(RegistryObjectRow.source_object).where(
                RegistryObjectRow.kind == ASSOCIATION,
                RegistryObjectRow.association_type.in_(DEPENDENTS),
                RegistryObjectRow.target_object.in_(pending))).all()
            fresh = {d for d in dependents if d and d not in seen}
            seen |= fresh
            pending = []
            for row in self.session.scalars(select(RegistryObjectRow).where(
                    RegistryObjectRow.id.in_(fresh), RegistryObjectRow.kind == DOCUMENT,
                    RegistryObjectRow.status == APPROVED).with_for_update()):
                row.status = DEPRECATED
                pending.append(row.id)
