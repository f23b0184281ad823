"""Registry rows for stored query tests, inserted directly (no ITI-42 round trip).

Objects are built with `registry.builders` (and the model, for folders) and
stored with `registry.store.row_for`, the same mapping ITI-42 uses, so the
indexed columns and code rows are exactly what a registration writes. Each
insert is stamped one second after the previous one: queries return objects
in registration order, so tests can compare lists.

`RegistryRows.query` runs ITI-18 (`run_stored_query`) as one of two
organisations, A (the default submitter) or B, with raw parameter slots
written as on the wire: `{"$name": "('a','b')"}` is one slot, a list of
strings is several slots of that name (ITI TF-2a 3.18.4.1.2.3.5).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.db import Database
from hub.security.identity import Caller
from hub.settings import Settings
from registry.builders import DocumentSpec, document_entry, has_member, relationship, submission_set
from registry.builders import folder as build_folder
from registry.model import (
    AnyObject,
    Association,
    Code,
    ExtrinsicObject,
    RegistryPackage,
    StoredQuery,
)
from registry.store import row_for
from registry.transactions.iti18_query import QueryResult, run_stored_query
from registry.vocabulary import (
    AssociationType,
    AvailabilityStatus,
    ReturnType,
    StoredQueryId,
    SubmissionSetScheme,
)

PATIENT = "P-100^^^&1.3.6.1.4.1.21367.2026.7&ISO"
OTHER_PATIENT = "P-200^^^&1.3.6.1.4.1.21367.2026.7&ISO"
ORG_A_OID = "1.3.6.1.4.1.21367.2026.100"
ORG_B_OID = "1.3.6.1.4.1.21367.2026.200"
SOURCE_ID = "1.3.6.1.4.1.21367.2026.9"
REPOSITORY = "1.3.6.1.4.1.21367.2026.1.1"
APPROVED = AvailabilityStatus.APPROVED.value
DEPRECATED = AvailabilityStatus.DEPRECATED.value
EPOCH = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)

RawParams = Mapping[str, str | Sequence[str]]


def unique_oid() -> str:
    """A fresh OID under 2.25 (ITU-T X.667)."""
    return f"2.25.{uuid.uuid4().int}"


def quoted(*values: str) -> str:
    """A parenthesised list of quoted values: `('a','b')` (quotes doubled inside)."""
    return "(" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def coded(*codes: Code) -> str:
    """A list of `code^^codingScheme` values."""
    return quoted(*[f"{c.code}^^{c.scheme}" for c in codes])


def raw_slots(params: RawParams) -> dict[str, list[list[str]]]:
    """Wire-form slots: a string is one Slot with one Value, a list is one Slot per string."""
    return {name: [[value]] if isinstance(value, str) else [[v] for v in value] for name, value in params.items()}


def caller_for(organisation_id: int, oid: str) -> Caller:
    return Caller(organisation_id=organisation_id, organisation_oid=oid, organisation_name=f"Org {oid}",
                  client_id=f"client-{organisation_id}", thumbprint="00" * 32, scopes=frozenset({"xds:query"}))


def document_object(patient_id: str = PATIENT, **changes: object) -> ExtrinsicObject:
    """A DocumentEntry built by `registry.builders.document_entry`; keywords override DocumentSpec fields."""
    content = uuid.uuid4().bytes
    spec = DocumentSpec(unique_id=unique_oid(), patient_id=patient_id, hash=hashlib.sha1(content).hexdigest(),
                        size=len(content), repository_unique_id=REPOSITORY)
    return document_entry(replace(spec, **changes))  # type: ignore[arg-type]


def folder_object(patient_id: str = PATIENT, codes: Sequence[Code] = (Code("RAD", "1.2.3.99", "Radiology"),),
                  last_update_time: str = "20260115093000") -> RegistryPackage:
    """An XDSFolder (ITI TF-3 4.2.3.4) as stored: with its lastUpdateTime."""
    return build_folder(unique_oid(), patient_id, tuple(codes), last_update_time=last_update_time)


def submission_set_object(patient_id: str = PATIENT, submission_time: str = "20260115093000",
                          source_id: str = SOURCE_ID, author_person: str | None = None,
                          content_type: Code | None = None) -> RegistryPackage:
    """A SubmissionSet built by `registry.builders.submission_set`, optionally with an authorPerson."""
    kwargs = {"content_type": content_type} if content_type else {}
    package = submission_set(unique_oid(), patient_id, source_id, submission_time, **kwargs)  # type: ignore[arg-type]
    if author_person:
        for author in package.classified_by(SubmissionSetScheme.AUTHOR.value):
            author.slots["authorPerson"] = [author_person]
    return package


@dataclass
class RegistryRows:
    """Inserts registry rows as organisation A (or B) and queries as either."""

    database: Database
    settings: Settings
    org_a: int
    org_b: int
    _count: int = field(default=0)

    @classmethod
    def create(cls, database: Database, organisation_factory: Callable[..., int],
               settings: Settings) -> RegistryRows:
        return cls(database, settings, organisation_factory("Org A", ORG_A_OID),
                   organisation_factory("Org B", ORG_B_OID))

    @property
    def caller_a(self) -> Caller:
        return caller_for(self.org_a, ORG_A_OID)

    @property
    def caller_b(self) -> Caller:
        return caller_for(self.org_b, ORG_B_OID)

    # -- inserts ------------------------------------------------------------------------------
    def store(self, *objects: AnyObject, restricted: bool = False, by_b: bool = False,
              status: str | None = None) -> None:
        """Insert `objects` (one transaction), each registered one second after the last."""
        with self.database.session() as session:
            for obj in objects:
                obj.status = status or obj.status or APPROVED
                obj.lid = obj.lid or obj.id
                self._count += 1
                session.add(row_for(obj, self.org_b if by_b else self.org_a, restricted,
                                    EPOCH + timedelta(seconds=self._count)))

    def document(self, patient_id: str = PATIENT, *, restricted: bool = False, by_b: bool = False,
                 status: str | None = None, object_type: str | None = None,
                 slots: Mapping[str, list[str]] | None = None, **changes: object) -> ExtrinsicObject:
        """A stored DocumentEntry; `changes` are DocumentSpec fields, `slots` extra slots (serviceStartTime...)."""
        doc = document_object(patient_id, **changes)
        if object_type:
            doc.object_type = object_type
        doc.slots.update(slots or {})
        self.store(doc, restricted=restricted, by_b=by_b, status=status)
        return doc

    def folder(self, patient_id: str = PATIENT, *, restricted: bool = False, status: str | None = None,
               **changes: object) -> RegistryPackage:
        package = folder_object(patient_id, **changes)  # type: ignore[arg-type]
        self.store(package, restricted=restricted, status=status)
        return package

    def submission_set(self, patient_id: str = PATIENT, *, status: str | None = None,
                       **changes: object) -> RegistryPackage:
        package = submission_set_object(patient_id, **changes)  # type: ignore[arg-type]
        self.store(package, status=status)
        return package

    def member(self, source: str, target: str, *, restricted: bool = False) -> Association:
        assoc = has_member(source, target)
        self.store(assoc, restricted=restricted)
        return assoc

    def relate(self, kind: AssociationType, source: str, target: str, *, restricted: bool = False) -> Association:
        assoc = relationship(kind, source, target)
        self.store(assoc, restricted=restricted)
        return assoc

    def submission(self, *members: ExtrinsicObject | RegistryPackage, patient_id: str = PATIENT,
                   **changes: Any) -> tuple[RegistryPackage, list[Association]]:
        """A SubmissionSet holding already stored `members`, with its HasMember associations."""
        package = self.submission_set(patient_id, **changes)
        return package, [self.member(package.id, m.id) for m in members]

    # -- queries ------------------------------------------------------------------------------
    def query(self, query_id: StoredQueryId | str, params: RawParams, *, as_b: bool = False,
              leaf: bool = False, limit: int | None = None) -> QueryResult:
        qid = query_id.value if isinstance(query_id, StoredQueryId) else query_id
        return_type = (ReturnType.LEAF_CLASS if leaf else ReturnType.OBJECT_REF).value
        settings = replace(self.settings, max_query_results=limit) if limit else self.settings
        with self.database.session() as session:
            return run_stored_query(session, StoredQuery(qid, return_type, raw_slots(params)),
                                    self.caller_b if as_b else self.caller_a, settings)

    def refs(self, query_id: StoredQueryId | str, params: RawParams, **options: object) -> list[str]:
        """The ObjectRef ids a query returns, in order."""
        return self.query(query_id, params, **options).refs  # type: ignore[arg-type]
