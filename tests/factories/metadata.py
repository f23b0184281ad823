"""Factories of XDS.b submissions for tests, on top of `registry.builders`.

Every call gives fresh uniqueIds and entryUUIDs, so tests never collide; keyword
arguments name what a test changes. `symbolic_ids` renames every id the way a
Document Source may (ITI TF-3 4.2.3.1.1). `as_xml` / `as_element` give the
same submission as the lcm:SubmitObjectsRequest a Document Source would send
(ITI TF-2b 3.42.4.1.2), through the registry's own codec; `read_xml` parses
bytes with the hardened settings every test uses.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace

from lxml import etree

from registry.builders import (
    DocumentSpec,
    document_entry,
    has_member,
    relationship,
    submission_set,
)
from registry.builders import folder as build_folder
from registry.ebrim import render_submit_objects_request
from registry.model import (
    Association,
    Code,
    ExtrinsicObject,
    RegistryPackage,
    SubmitObjectsRequest,
)
from registry.vocabulary import ON_DEMAND_DOCUMENT_ENTRY, AssociationType

PATIENT = "PAT-1^^^&1.3.6.1.4.1.21367.2026.7&ISO"
OTHER_PATIENT = "PAT-2^^^&1.3.6.1.4.1.21367.2026.7&ISO"
SOURCE_ID = "1.3.6.1.4.1.21367.2026.9"
REPOSITORY = "1.3.6.1.4.1.21367.2026.1.1"
SUBMISSION_TIME = "20260115093000"
RESTRICTED = Code("R", "2.16.840.1.113883.5.25", "Restricted")


def unique_oid() -> str:
    """A fresh OID under 2.25 (ITU-T X.667 UUID arc), 44 characters at most."""
    return f"2.25.{uuid.uuid4().int}"


def document(patient_id: str = PATIENT, **changes: object) -> ExtrinsicObject:
    content = uuid.uuid4().bytes
    spec = DocumentSpec(unique_id=unique_oid(), patient_id=patient_id, hash=hashlib.sha1(content).hexdigest(),
                        size=len(content), repository_unique_id=REPOSITORY)
    return document_entry(replace(spec, **changes))  # type: ignore[arg-type]


def folder(patient_id: str = PATIENT, codes: tuple[Code, ...] = (Code("RAD", "1.2.3.99", "Radiology"),),
           title: str = "Imaging") -> RegistryPackage:
    """An XDSFolder (ITI TF-3 4.2.3.4) with a fresh uniqueId."""
    return build_folder(unique_oid(), patient_id, codes, title)


def submission(patient_id: str = PATIENT, documents: int = 1, folders: int = 0,
               entries: list[ExtrinsicObject] | None = None) -> SubmitObjectsRequest:
    """A SubmissionSet with its documents (and folders holding every document), all HasMember Original."""
    docs = entries if entries is not None else [document(patient_id) for _ in range(documents)]
    ss = submission_set(unique_oid(), patient_id, SOURCE_ID, SUBMISSION_TIME)
    packages = [folder(patient_id) for _ in range(folders)]
    associations: list[Association] = [has_member(ss.id, o.id) for o in [*docs, *packages]]
    associations += [has_member(f.id, d.id) for f in packages for d in docs]
    return SubmitObjectsRequest([ss, *packages, *docs, *associations])


def replacement(target_id: str, kind: AssociationType = AssociationType.RPLC,
                patient_id: str = PATIENT) -> tuple[SubmitObjectsRequest, ExtrinsicObject]:
    """A submission of one new document related to `target_id` by `kind`."""
    request = submission(patient_id)
    new_doc = request.document_entries[0]
    request.objects.append(relationship(kind, new_doc.id, target_id))
    return request, new_doc


def add_to_folder(folder_id: str, document_id: str, patient_id: str = PATIENT) -> SubmitObjectsRequest:
    """Add an existing document to an existing folder (ITI TF-3 4.2.2.1.3)."""
    ss = submission_set(unique_oid(), patient_id, SOURCE_ID, SUBMISSION_TIME)
    membership = has_member(folder_id, document_id)
    membership.slots = {}
    return SubmitObjectsRequest([ss, membership, has_member(ss.id, membership.id, "Original")])


def symbolic_ids(request: SubmitObjectsRequest) -> SubmitObjectsRequest:
    """Rename every urn:uuid id of `request` to a symbolic one ("Document01"...), references too."""
    mapping: dict[str, str] = {}
    counter = iter(range(1, 10_000))

    def name(ident: str) -> str:
        return mapping.setdefault(ident, f"sym{next(counter):02d}")

    for obj in request.objects:
        obj.id = name(obj.id)
        for c in obj.classifications:
            c.id = name(c.id)
            c.classified_object = obj.id
        for e in obj.external_identifiers:
            e.id = name(e.id)
            e.registry_object = obj.id
    for assoc in request.associations:
        assoc.source = mapping.get(assoc.source, assoc.source)
        assoc.target = mapping.get(assoc.target, assoc.target)
    return request


def on_demand_document(patient_id: str = PATIENT, **changes: object) -> ExtrinsicObject:
    """An On-Demand DocumentEntry (ITI TF-3 4.2.5.2): no hash, size or creationTime."""
    entry = document(patient_id, **changes)
    entry.object_type = ON_DEMAND_DOCUMENT_ENTRY
    for name in ("hash", "size", "creationTime"):
        entry.slots.pop(name, None)
    return entry


# -- the same submissions as XML -------------------------------------------------------
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def as_element(request: SubmitObjectsRequest) -> etree._Element:
    """The lcm:SubmitObjectsRequest of `request` (the body of an ITI-42 request)."""
    return render_submit_objects_request(request)


def as_xml(request: SubmitObjectsRequest) -> bytes:
    """`as_element` serialised, with an XML declaration, as a Document Source sends it."""
    return bytes(etree.tostring(as_element(request), xml_declaration=True, encoding="UTF-8"))


def read_xml(data: bytes) -> etree._Element:
    """Parse test XML without entity expansion or network access (the hub's own rules)."""
    return etree.fromstring(data, PARSER)


PDF_BYTES = b"%PDF-1.4\n% a tiny test report\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
KOS_FORMAT = Code("1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1", "Key Object Selection Document")


def entry_for(content: bytes, patient_id: str = PATIENT, **changes: object) -> ExtrinsicObject:
    """A DocumentEntry describing these bytes: hash and size as a Document Source computes them."""
    described: dict[str, object] = {"hash": hashlib.sha1(content).hexdigest(), "size": len(content), **changes}
    return document(patient_id, **described)


def kos_entry(content: bytes, patient_id: str = PATIENT, **changes: object) -> ExtrinsicObject:
    """A RAD-68 manifest entry: mimeType application/dicom, the KOS formatCode."""
    return entry_for(content, patient_id, mime_type="application/dicom", format_code=KOS_FORMAT,
                     title="Imaging manifest", **changes)


def pdf_submission(patient_id: str = PATIENT) -> SubmitObjectsRequest:
    return submission(patient_id, entries=[entry_for(PDF_BYTES, patient_id)])
