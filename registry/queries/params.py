"""Stored query parameters: declaration and value syntax (ITI TF-2a 3.18.4.1.2.3.5).

A parameter arrives as one or more rim:Slot elements of the same name, each
with Value texts. A Value is a quoted string `'x'`, a parenthesised list
`('x','y')` (the OR of its members), or an unquoted number (times). Several
Slots of one name are an AND; only the parameters declared `and_slots`
(eventCodeList, confidentialityCode, folder codeList: ITI TF-2a
3.18.4.1.2.3.7.1) may repeat. Codes are `code^^codingScheme`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from hub.errors import RegistryMetadataError, StoredQueryMissingParam, StoredQueryParamNumber
from registry.vocabulary import DOCUMENT_ENTRY_TYPES, AssociationType

# ITI TF-3 4.2.3.1.7 / Table 4.2.3.2-1 (patientId): an HL7 CX with only ID and assigning authority.
_PATIENT_ID = re.compile(r"^[^\^&]+\^\^\^&[0-2](\.(0|[1-9][0-9]*))+&ISO$")
_DTM = re.compile(r"^\d{4}(\d{2}){0,5}$")                       # HL7 DTM, ITI TF-3 Table 4.2.3.1.7-2
_STATUS = re.compile(r"^urn:[A-Za-z0-9.:\-]+:StatusType:[A-Za-z]+$")  # ebRS StatusType URNs (Approved, ...)
_ASSOCIATION_TYPES = frozenset(t.value for t in AssociationType)


class Kind(Enum):
    """What a parameter's values must look like (checked before any SQL is built)."""

    STRING = "string"
    PATIENT_ID = "patient id"
    CODE = "code"
    TIME = "time"
    UUID = "uuid"
    STATUS = "status"
    ENTRY_TYPE = "entry type"
    ASSOCIATION_TYPE = "association type"


@dataclass(frozen=True)
class Param:
    """A declared stored query parameter (one row of an ITI TF-2a 3.18.4.1.2.3.7 table)."""

    name: str
    kind: Kind = Kind.STRING
    required: bool = False
    multiple: bool = True       # several values (OR) allowed; False for patient ids and times
    and_slots: bool = False     # several Slots allowed, AND between them


@dataclass(frozen=True)
class CodeValue:
    code: str
    scheme: str


def split_value(text: str, name: str) -> list[str]:
    """The members of one Value: `'a'`, `('a','b')`, `20240101` or `(1,2)`."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    members: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        if text[i] == "'":
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise RegistryMetadataError(f"unterminated quoted value in {name}: {text[:80]!r}", name)
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":  # '' is an escaped quote
                        chars.append("'")
                        j += 2
                        continue
                    break
                chars.append(text[j])
                j += 1
            members.append("".join(chars))
            i = j + 1
        else:
            j = i
            while j < n and text[j] != ",":
                j += 1
            token = text[i:j].strip()
            if not re.fullmatch(r"[0-9A-Za-z.:_\-]+", token):
                raise RegistryMetadataError(f"value {token!r} of {name} is neither quoted nor a number", name)
            members.append(token)
            i = j
    return members


def parse_code(text: str, name: str) -> CodeValue:
    """`code^^codingScheme` (ITI TF-2a 3.18.4.1.2.3.5); a bare code matches any scheme."""
    code, sep, scheme = text.partition("^^")
    if not code:
        raise RegistryMetadataError(f"code value {text!r} of {name} is not code^^codingScheme", name)
    return CodeValue(code, scheme if sep else "")


def check_value(param: Param, value: str) -> str:
    """`value` if it fits the parameter's kind, else XDSRegistryMetadataError."""
    if param.kind is Kind.PATIENT_ID and not _PATIENT_ID.match(value):
        raise RegistryMetadataError(
            f"{param.name} {value!r} is not a patient id of the form ID^^^&OID&ISO", param.name)
    if param.kind is Kind.TIME and not _DTM.match(value):
        raise RegistryMetadataError(f"{param.name} {value!r} is not an HL7 DTM time", param.name)
    if param.kind is Kind.UUID and not value.startswith("urn:uuid:"):
        raise RegistryMetadataError(f"{param.name} {value!r} is not a urn:uuid", param.name)
    if param.kind is Kind.STATUS and not _STATUS.match(value):
        raise RegistryMetadataError(f"{param.name} {value!r} is not a StatusType URN", param.name)
    if param.kind is Kind.ENTRY_TYPE and value not in DOCUMENT_ENTRY_TYPES:
        raise RegistryMetadataError(
            f"{param.name} {value!r} is neither the stable nor the on-demand DocumentEntry type", param.name)
    if param.kind is Kind.ASSOCIATION_TYPE and value not in _ASSOCIATION_TYPES:
        raise RegistryMetadataError(f"{param.name} {value!r} is not an association type", param.name)
    return value


class Parameters:
    """The parsed parameters of one query: `values(name)` (OR), `slots(name)` (AND of ORs)."""

    def __init__(self, declared: tuple[Param, ...], raw: dict[str, list[list[str]]]) -> None:
        self._declared = {p.name: p for p in declared}
        self._slots: dict[str, list[list[str]]] = {}
        for name, slots in raw.items():
            param = self._declared.get(name)
            if param is None:
                continue  # ITI TF-2a 3.18.4.1.2.3.3: unknown parameters are ignored
            if len(slots) > 1 and not param.and_slots:
                raise StoredQueryParamNumber(f"parameter {name} is given {len(slots)} times", name)
            parsed = []
            for values in slots:
                members = [check_value(param, m) for text in values for m in split_value(text, name)]
                if not param.multiple and len(members) > 1:
                    raise StoredQueryParamNumber(f"parameter {name} takes one value, got {len(members)}", name)
                parsed.append(members)
            self._slots[name] = parsed
        for param in declared:
            if param.required and not any(self._slots.get(param.name, [])):
                raise StoredQueryMissingParam(f"required parameter {param.name} is missing", param.name)

    def has(self, name: str) -> bool:
        return any(self._slots.get(name, []))

    def map_values(self, name: str, convert: Callable[[str], str]) -> None:
        """Replace each value of parameter `name` by `convert(value)` (e.g. a local patient id by the domain's)."""
        if name in self._slots:
            self._slots[name] = [[convert(v) for v in slot] for slot in self._slots[name]]

    def values(self, name: str) -> list[str]:
        return [v for slot in self._slots.get(name, []) for v in slot]

    def value(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    def slots(self, name: str) -> list[list[str]]:
        return [s for s in self._slots.get(name, []) if s]

    def code_slots(self, name: str) -> list[list[CodeValue]]:
        return [[parse_code(v, name) for v in slot] for slot in self.slots(name)]

    def exactly_one_of(self, *names: str) -> str:
        given = [n for n in names if self.has(n)]
        if len(given) > 1:
            raise StoredQueryParamNumber(f"parameters {' and '.join(given)} exclude each other", given[1])
        if not given:
            raise StoredQueryMissingParam(f"one of {', '.join(names)} is required", names[0])
        return given[0]
