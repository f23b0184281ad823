"""Qualified names of the ebXML RegRep 3.0 elements the codec reads and writes.

ebRIM 3.0 (rim.xsd), ebRS 3.0 (rs.xsd, query.xsd, lcm.xsd) as profiled by
ITI TF-3 4.2 (XDS.b metadata) and ITI TF-2a/2b 3.18, 3.42.
"""

from __future__ import annotations

from registry.vocabulary import NS_LCM, NS_QUERY, NS_RIM, NS_RS, NS_XDSB

NSMAP = {"rim": NS_RIM, "rs": NS_RS, "query": NS_QUERY, "lcm": NS_LCM}


def rim(local: str) -> str:
    return f"{{{NS_RIM}}}{local}"


def rs(local: str) -> str:
    return f"{{{NS_RS}}}{local}"


def query(local: str) -> str:
    return f"{{{NS_QUERY}}}{local}"


def lcm(local: str) -> str:
    return f"{{{NS_LCM}}}{local}"


SUBMIT_OBJECTS_REQUEST = lcm("SubmitObjectsRequest")
PROVIDE_AND_REGISTER = f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest"
REGISTRY_OBJECT_LIST = rim("RegistryObjectList")
EXTRINSIC_OBJECT = rim("ExtrinsicObject")
REGISTRY_PACKAGE = rim("RegistryPackage")
ASSOCIATION = rim("Association")
CLASSIFICATION = rim("Classification")
EXTERNAL_IDENTIFIER = rim("ExternalIdentifier")
OBJECT_REF = rim("ObjectRef")
SLOT = rim("Slot")
VALUE_LIST = rim("ValueList")
VALUE = rim("Value")
NAME = rim("Name")
DESCRIPTION = rim("Description")
LOCALIZED_STRING = rim("LocalizedString")
VERSION_INFO = rim("VersionInfo")
CONTENT_VERSION_INFO = rim("ContentVersionInfo")
ADHOC_QUERY = rim("AdhocQuery")
ADHOC_QUERY_REQUEST = query("AdhocQueryRequest")
ADHOC_QUERY_RESPONSE = query("AdhocQueryResponse")
RESPONSE_OPTION = query("ResponseOption")
REGISTRY_RESPONSE = rs("RegistryResponse")
REGISTRY_ERROR_LIST = rs("RegistryErrorList")
REGISTRY_ERROR = rs("RegistryError")


def prefixed(tag: str) -> str:
    """`{ns}Local` as `prefix:Local` for error locations."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        for prefix, uri in NSMAP.items():
            if uri == ns:
                return f"{prefix}:{local}"
        return local
    return tag
