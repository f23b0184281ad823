"""Validation of what the hub sends against the official schemas in $XDSHUB_SCHEMAS."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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


def schemas_dir() -> Path:
    return require_schemas()
