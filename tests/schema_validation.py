"""Validation of what the hub sends against the official schemas in $XDSHUB_SCHEMAS."""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from tests.conftest import require_schemas


@lru_cache(maxsize=2)
def _schema(path: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(path, parser))


def bundle_schema() -> etree.XMLSchema:
    """The SOAP 1.2 + WS-Addressing + ebRS 3.0 + XDS.b + XDS-I.b bundle (skips when unset)."""
    return _schema(str(require_schemas() / "xdshub-all.xsd"))


def assert_valid(document: etree._Element | bytes) -> None:
    """Fail with the schema's own messages when `document` does not validate."""
    if isinstance(document, bytes):
        document = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    schema = bundle_schema()
    if not schema.validate(document):
        errors = "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"not valid against xdshub-all.xsd:\n{errors}")


XOP_INCLUDE = "{http://www.w3.org/2004/08/xop/include}Include"


def assert_valid_mtom(document: etree._Element, parts: dict[str, bytes]) -> None:
    """Validate an MTOM message the way the schema sees it: each xop:Include replaced by the base64 of
    the part it names (XOP 1.0, 3.2: the reconstructed infoset). A href naming no part fails."""
    inlined = etree.fromstring(etree.tostring(document), etree.XMLParser(resolve_entities=False, no_network=True))
    for include in list(inlined.iter(XOP_INCLUDE)):
        href = include.get("href", "")
        assert href.startswith("cid:"), f"xop:Include href {href!r} is not a cid: URL"
        content_id = unquote(href[4:])
        assert content_id in parts, f"xop:Include names part <{content_id}>, which the message does not carry"
        parent = include.getparent()
        assert parent is not None
        parent.remove(include)
        parent.text = base64.b64encode(parts[content_id]).decode()
    assert_valid(inlined)


def schemas_dir() -> Path:
    return require_schemas()
