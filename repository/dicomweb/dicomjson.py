"""DICOM JSON (PS3.18 Annex F): the elements of query results, store responses and instance metadata.

A data set is an object keyed by the eight uppercase hex digits of each tag,
each value `{"vr": VR, "Value": [...]}`, without "Value" when the attribute is
empty (F.2.5); person names are objects with an "Alphabetic" group (F.2.2);
IS, DS and the binary integer VRs are JSON numbers (F.2.3).

`instance_metadata` renders an instance's header for WADO-RS metadata: every
element of a binary VR (OB, OD, OF, OL, OV, OW, UN) is given as a
"BulkDataURI" (F.2.6) instead of its value, the value never read from the
file, so even a huge Pixel Data costs nothing here. The URI names the element
by its tag path, `<instance>/bulkdata/<tag>[/<item>/<tag>...]`, which
`bulk_value` follows back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import BYTES_VR

from repository.dicomweb.errors import BadRequest, NotFound

__all__ = ["BINARY_VRS", "bulk_value", "element", "instance_metadata", "tag_key"]

BINARY_VRS = frozenset(str(vr) for vr in BYTES_VR)
_NUMBER_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"})


def tag_key(tag: int) -> str:
    """The JSON key of a tag: eight uppercase hex digits (F.2.1.1)."""
    return f"{tag:08X}"


def element(vr: str, values: Iterable[Any] = ()) -> dict[str, Any]:
    """One attribute: `values` without empty ones; no "Value" member when none is left (F.2.5)."""
    kept = [v for v in values if v is not None and v != ""]
    result: dict[str, Any] = {"vr": vr}
    if not kept:
        return result
    if vr == "PN":
        result["Value"] = [{"Alphabetic": str(v)} for v in kept]
    elif vr in _NUMBER_VRS:
        result["Value"] = [int(v) if vr not in ("DS", "FL", "FD") else float(v) for v in kept]
    else:
        result["Value"] = [str(v) for v in kept]
    return result


def _binary_vr(raw: RawDataElement | DataElement) -> str | None:
    """The VR of a binary element without reading its value, None when the element is not binary."""
    vr = raw.VR
    if vr is None:                 # Implicit VR: the dictionary's, UN for a tag it does not know (PS3.5 A.1)
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            vr = "UN"
    vr = str(vr)
    if " or " in vr:               # OB or OW is OW in Implicit VR Little Endian; US or SS is no bulk data
        options = set(vr.split(" or "))
        if not options <= BINARY_VRS:
            return None
        vr = "OW" if "OW" in options else sorted(options)[0]
    return vr if vr in BINARY_VRS else None


def _length(raw: RawDataElement | DataElement) -> int:
    if isinstance(raw, RawDataElement):
        return int(raw.length)
    return 0 if raw.is_empty else 1


def _walk(dataset: Dataset, uri: Callable[[str], str], path: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in sorted(dataset.keys()):
        if tag.element == 0:        # group lengths are not part of the JSON model
            continue
        raw = dataset.get_item(tag)
        key = tag_key(tag)
        here = f"{path}/{key.lower()}" if path else key.lower()
        binary = _binary_vr(raw)
        if binary is not None:
            result[key] = {"vr": binary, "BulkDataURI": uri(here)} if _length(raw) else {"vr": binary}
            continue
        elem = dataset[tag]
        if elem.VR == "SQ":
            result[key] = {"vr": "SQ"}
            if elem.value:
                result[key]["Value"] = [_walk(item, uri, f"{here}/{n}") for n, item in enumerate(elem.value)]
            continue
        result[key] = elem.to_json_dict(None, 0)
    return result


def instance_metadata(dataset: Dataset, bulk_base: str) -> dict[str, Any]:
    """The instance's data set (File Meta Information left out) in DICOM JSON, bulk values as URIs."""
    return _walk(dataset, lambda path: f"{bulk_base}/{path}", "")


def _parse_path(path: str) -> list[BaseTag | int]:
    steps: list[BaseTag | int] = []
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) % 2 == 0 or len(parts) > 15:
        raise BadRequest(f"bulk data path {path[:80]!r} is not tag[/item/tag...]")
    for n, part in enumerate(parts):
        if n % 2:
            if not part.isdigit():
                raise BadRequest(f"bulk data path {path[:80]!r}: item {part[:16]!r} is not a number")
            steps.append(int(part))
        else:
            if len(part) != 8:
                raise BadRequest(f"bulk data path {path[:80]!r}: {part[:16]!r} is not eight hex digits")
            try:
                steps.append(Tag(int(part, 16)))
            except ValueError:
                raise BadRequest(f"bulk data path {path[:80]!r}: {part[:16]!r} is not eight hex digits") from None
    return steps


def bulk_value(dataset: Dataset, path: str) -> bytes:
    """The bytes of the binary element a bulk data path names; NotFound when the data set has none there."""
    steps = _parse_path(path)
    current: Dataset = dataset
    for n in range(0, len(steps) - 1, 2):
        tag, index = steps[n], steps[n + 1]
        if tag not in current or current[tag].VR != "SQ" or not 0 <= int(index) < len(current[tag].value):
            raise NotFound(f"the instance has no bulk data at {path}")
        current = current[tag].value[int(index)]
    tag = steps[-1]
    if tag not in current:
        raise NotFound(f"the instance has no bulk data at {path}")
    elem = current[tag]
    if str(elem.VR) not in BINARY_VRS and " or " not in str(elem.VR):
        raise NotFound(f"the element at {path} is not bulk data")
    value = elem.value
    return bytes(value) if value else b""
