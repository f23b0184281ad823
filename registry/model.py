"""Plain ebRIM 3.0 objects of XDS.b metadata, free of any XML.

The codec (`registry.ebrim`) turns SubmitObjectsRequest bodies into these and
renders them back as LeafClass. They keep every slot, classification and
external identifier of the submission, so what a consumer queries is what the
source registered; typed accessors (`unique_id`, `patient_id`, `codes(...)`)
give the XDS meaning on top (ITI TF-3 4.2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.vocabulary import (
    ASSOCIATION_TYPE,
    DOCUMENT_ENTRY_TYPES,
    DocumentEntryScheme,
    FolderScheme,
    ObjectKind,
    SubmissionSetScheme,
)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
    if isinstance(value, Classification | ExternalIdentifier):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


@dataclass(frozen=True)
class Code:
    """A coded value: code, coding scheme (the codingScheme slot) and display name."""

    code: str
    scheme: str
    display: str = ""


@dataclass
class Classification:
    id: str
    classified_object: str
    scheme: str | None = None          # classificationScheme (external classification)
    node: str | None = None            # classificationNode (internal, e.g. XDSSubmissionSet)
    node_representation: str = ""
    name: str | None = None
    slots: dict[str, list[str]] = field(default_factory=dict)

    def as_code(self) -> Code:
        scheme = (self.slots.get("codingScheme") or [""])[0]
        return Code(self.node_representation, scheme, self.name or "")


@dataclass
class ExternalIdentifier:
    id: str
    registry_object: str
    scheme: str
    value: str
    name: str | None = None


@dataclass
class RegistryObject:
    """What every ebRIM RegistryObject has."""

    id: str
    object_type: str = ""
    lid: str | None = None
    status: str | None = None
    home: str | None = None
    version: str = "1"
    name: str | None = None
    description: str | None = None
    slots: dict[str, list[str]] = field(default_factory=dict)
    classifications: list[Classification] = field(default_factory=list)
    external_identifiers: list[ExternalIdentifier] = field(default_factory=list)

    # -- generic accessors -------------------------------------------------
    def slot(self, name: str) -> list[str]:
        return self.slots.get(name, [])

    def slot_value(self, name: str) -> str | None:
        values = self.slots.get(name)
        return values[0] if values else None

    def external_id(self, scheme: str) -> str | None:
        for ident in self.external_identifiers:
            if ident.scheme == scheme:
                return ident.value
        return None

    def classified_by(self, scheme: str) -> list[Classification]:
        return [c for c in self.classifications if c.scheme == scheme]

    def codes(self, scheme: str) -> list[Code]:
        return [c.as_code() for c in self.classified_by(scheme)]

    def has_node(self, node: str) -> bool:
        return any(c.node == node for c in self.classifications)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (what the registry stores); `object_from_dict` reverses it.

        Written out rather than `dataclasses.asdict`, which deep-copies recursively
        and is the single largest cost of registering a submission.
        """
        data = {name: _plain(value) for name, value in vars(self).items()}
        data["_type"] = type(self).__name__
        return data


@dataclass
class ExtrinsicObject(RegistryObject):
    """An XDSDocumentEntry (stable or on-demand)."""

    mime_type: str = ""
    is_opaque: bool = False

    kind = ObjectKind.DOCUMENT_ENTRY

    @property
    def unique_id(self) -> str | None:
        return self.external_id(DocumentEntryScheme.UNIQUE_ID)

    @property
    def patient_id(self) -> str | None:
        return self.external_id(DocumentEntryScheme.PATIENT_ID)

    @property
    def is_document_entry(self) -> bool:
        return self.object_type in DOCUMENT_ENTRY_TYPES


@dataclass
class RegistryPackage(RegistryObject):
    """A SubmissionSet or a Folder, told apart by their classification node."""

    @property
    def kind(self) -> ObjectKind:  # type: ignore[override]
        if self.has_node(SubmissionSetScheme.NODE):
            return ObjectKind.SUBMISSION_SET
        if self.has_node(FolderScheme.NODE):
            return ObjectKind.FOLDER
        raise ValueError(f"RegistryPackage {self.id} is neither a SubmissionSet nor a Folder")

    @property
    def is_submission_set(self) -> bool:
        return self.has_node(SubmissionSetScheme.NODE)

    @property
    def is_folder(self) -> bool:
        return self.has_node(FolderScheme.NODE)

    @property
    def unique_id(self) -> str | None:
        scheme = SubmissionSetScheme.UNIQUE_ID if self.is_submission_set else FolderScheme.UNIQUE_ID
        return self.external_id(scheme)

    @property
    def patient_id(self) -> str | None:
        scheme = SubmissionSetScheme.PATIENT_ID if self.is_submission_set else FolderScheme.PATIENT_ID
        return self.external_id(scheme)


@dataclass
class Association(RegistryObject):
    association_type: str = ""
    source: str = ""
    target: str = ""

    kind = ObjectKind.ASSOCIATION

    def __post_init__(self) -> None:
        if not self.object_type:
            self.object_type = ASSOCIATION_TYPE


AnyObject = ExtrinsicObject | RegistryPackage | Association


@dataclass
class ObjectRef:
    id: str
    home: str | None = None


@dataclass
class SubmitObjectsRequest:
    """An ITI-42 submission: the objects of one SubmitObjectsRequest, in document order."""

    objects: list[AnyObject]
    object_refs: list[ObjectRef] = field(default_factory=list)

    @property
    def document_entries(self) -> list[ExtrinsicObject]:
        return [o for o in self.objects if isinstance(o, ExtrinsicObject)]

    @property
    def packages(self) -> list[RegistryPackage]:
        return [o for o in self.objects if isinstance(o, RegistryPackage)]

    @property
    def submission_sets(self) -> list[RegistryPackage]:
        return [p for p in self.packages if p.is_submission_set]

    @property
    def folders(self) -> list[RegistryPackage]:
        return [p for p in self.packages if p.is_folder]

    @property
    def associations(self) -> list[Association]:
        return [o for o in self.objects if isinstance(o, Association)]


_TYPES: dict[str, type[RegistryObject]] = {
    "ExtrinsicObject": ExtrinsicObject,
    "RegistryPackage": RegistryPackage,
    "Association": Association,
}


def object_from_dict(data: dict[str, Any]) -> AnyObject:
    """Rebuild an object stored with `to_dict` (the registry's JSON column)."""
    data = dict(data)
    cls = _TYPES[data.pop("_type")]
    data["classifications"] = [Classification(**c) for c in data.get("classifications", [])]
    data["external_identifiers"] = [ExternalIdentifier(**e) for e in data.get("external_identifiers", [])]
    return cls(**data)  # type: ignore[return-value]


@dataclass
class StoredQuery:
    """An ITI-18 AdhocQueryRequest: query id, return type and raw parameter slots.

    Each parameter keeps every Slot of that name in order (AND between slots,
    used by $XDSDocumentEntryEventCodeList and $XDSDocumentEntryConfidentialityCode),
    each slot its list of value strings as sent; the stored query classes parse
    the values (ITI TF-2a 3.18.4.1.2.3.5 value syntax).
    """

    query_id: str
    return_type: str
    parameters: dict[str, list[list[str]]]
    home: str | None = None
    max_results: int | None = None
