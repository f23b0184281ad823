"""Writing `registry.model` objects as ebRS 3.0 messages.

Registry side: rs:RegistryResponse (ITI-42, ITI TF-2b 3.42.4.2) and
query:AdhocQueryResponse (ITI-18, ITI TF-2a 3.18.4.1.3). Client side (demo,
benchmark, federation): lcm:SubmitObjectsRequest and query:AdhocQueryRequest.
Objects are rendered faithfully as LeafClass (ITI TF-3 4.2.3): every slot,
name, classification and external identifier they were registered with.
Element order follows rim.xsd: Slot*, Name, Description, VersionInfo,
Classification*, ExternalIdentifier*.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from hub.errors import XdsError
from registry.ebrim import names as n
from registry.model import (
    AnyObject,
    Association,
    Classification,
    ExternalIdentifier,
    ExtrinsicObject,
    RegistryObject,
    RegistryPackage,
    StoredQuery,
    SubmitObjectsRequest,
)
from registry.vocabulary import (
    CLASSIFICATION_TYPE,
    EXTERNAL_IDENTIFIER_TYPE,
    ResponseStatus,
    Severity,
)


def _sub(parent: etree._Element, tag: str, attrs: dict[str, str | None] | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    for key, value in (attrs or {}).items():
        if value is not None:
            element.set(key, value)
    return element


def _root(tag: str) -> etree._Element:
    return etree.Element(tag, nsmap=n.NSMAP)


def _slot(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    value_list = _sub(_sub(parent, n.SLOT, {"name": name}), n.VALUE_LIST)
    for value in values:
        _sub(value_list, n.VALUE).text = value


def _slots(parent: etree._Element, slots: dict[str, list[str]]) -> None:
    for name, values in slots.items():
        _slot(parent, name, values)


def _localized(parent: etree._Element, tag: str, value: str | None) -> None:
    if value is not None:
        _sub(_sub(parent, tag), n.LOCALIZED_STRING, {"value": value})


def _classification(parent: etree._Element, c: Classification) -> None:
    # nodeRepresentation is written for external classifications even when empty
    # (the author classification: ITI TF-3 4.2.3.1.4 shows nodeRepresentation="").
    el = _sub(parent, n.CLASSIFICATION, {
        "id": c.id,
        "objectType": CLASSIFICATION_TYPE,
        "classificationScheme": c.scheme,
        "classificationNode": c.node,
        "classifiedObject": c.classified_object,
        "nodeRepresentation": c.node_representation if (c.scheme or c.node_representation) else None,
    })
    _slots(el, c.slots)
    _localized(el, n.NAME, c.name)


def _external_identifier(parent: etree._Element, e: ExternalIdentifier) -> None:
    el = _sub(parent, n.EXTERNAL_IDENTIFIER, {
        "id": e.id, "objectType": EXTERNAL_IDENTIFIER_TYPE, "registryObject": e.registry_object,
        "identificationScheme": e.scheme, "value": e.value,
    })
    _localized(el, n.NAME, e.name)


def _content(el: etree._Element, obj: RegistryObject, version_info: bool) -> None:
    _slots(el, obj.slots)
    _localized(el, n.NAME, obj.name)
    _localized(el, n.DESCRIPTION, obj.description)
    if version_info or (obj.version or "1") != "1":
        _sub(el, n.VERSION_INFO, {"versionName": obj.version or "1"})
    for classification in obj.classifications:
        _classification(el, classification)
    for ident in obj.external_identifiers:
        _external_identifier(el, ident)


def _common(obj: RegistryObject) -> dict[str, str | None]:
    return {"id": obj.id, "home": obj.home, "lid": obj.lid, "objectType": obj.object_type or None,
            "status": obj.status}


def _append_object(parent: etree._Element | None, obj: AnyObject, version_info: bool,
                   home: str | None = None) -> etree._Element:
    attrs = _common(obj)
    if home:
        attrs["home"] = home
    if isinstance(obj, ExtrinsicObject):
        tag = n.EXTRINSIC_OBJECT
        attrs["mimeType"] = obj.mime_type or None
        attrs["isOpaque"] = "true" if obj.is_opaque else None
    elif isinstance(obj, RegistryPackage):
        tag = n.REGISTRY_PACKAGE
    elif isinstance(obj, Association):
        tag = n.ASSOCIATION
        attrs.update(associationType=obj.association_type, sourceObject=obj.source, targetObject=obj.target)
    else:  # pragma: no cover - AnyObject is closed
        raise TypeError(f"not a registry object: {type(obj).__name__}")
    if parent is None:
        el = _root(tag)
        for key, value in attrs.items():
            if value is not None:
                el.set(key, value)
    else:
        el = _sub(parent, tag, attrs)
    _content(el, obj, version_info)
    return el


def render_objects(objects: Iterable[AnyObject], *, version_info: bool = True) -> list[etree._Element]:
    """Each object as a standalone LeafClass element (rim namespace declared on each)."""
    return [_append_object(None, obj, version_info) for obj in objects]


def _error_list(parent: etree._Element, errors: list[XdsError]) -> None:
    if not errors:
        return
    highest = Severity.ERROR if any(e.severity == Severity.ERROR for e in errors) else Severity.WARNING
    error_list = _sub(parent, n.REGISTRY_ERROR_LIST, {"highestSeverity": highest.value})
    for error in errors:
        render_registry_error(error, error_list)


def render_registry_error(error: XdsError, parent: etree._Element | None = None) -> etree._Element:
    """rs:RegistryError (ITI TF-3 4.2.4.1), added to `parent` (a RegistryErrorList) or standalone."""
    el = _root(n.REGISTRY_ERROR) if parent is None else etree.SubElement(parent, n.REGISTRY_ERROR)
    el.set("errorCode", error.code.value)
    el.set("codeContext", error.message)
    if error.location:
        el.set("location", error.location)
    el.set("severity", error.severity.value)
    el.text = error.message
    return el


def render_registry_response(status: ResponseStatus, errors: list[XdsError]) -> etree._Element:
    """rs:RegistryResponse with a RegistryErrorList when there are errors (ITI TF-2b 3.42.4.2.2)."""
    root = _root(n.REGISTRY_RESPONSE)
    root.set("status", ResponseStatus(status).value)
    _error_list(root, errors)
    return root


def render_adhoc_query_response(status: ResponseStatus, objects: list[AnyObject] | None,
                                refs: list[str] | None, errors: list[XdsError], *,
                                home: str | None = None) -> etree._Element:
    """query:AdhocQueryResponse: LeafClass objects or ObjectRefs (ITI TF-2a 3.18.4.1.3).

    The RegistryObjectList is always present (query.xsd), empty on failure.
    `home`, a responding gateway's homeCommunityId, is set on every object and
    ObjectRef returned (ITI TF-2b 3.38.4.1.3).
    """
    root = _root(n.ADHOC_QUERY_RESPONSE)
    root.set("status", ResponseStatus(status).value)
    _error_list(root, errors)
    object_list = _sub(root, n.REGISTRY_OBJECT_LIST)
    for obj in objects or []:
        _append_object(object_list, obj, True, home)
    for ref in refs or []:
        _sub(object_list, n.OBJECT_REF, {"id": ref, "home": home})
    return root


def render_submit_objects_request(request: SubmitObjectsRequest) -> etree._Element:
    """lcm:SubmitObjectsRequest of a Document Source (ITI TF-2b 3.42.4.1.2).

    Classifications stay nested in their objects (ebRIM 3.0 allows both forms;
    ITI TF-3 4.2.1.2). VersionInfo is only written for versions other than 1.
    """
    root = _root(n.SUBMIT_OBJECTS_REQUEST)
    object_list = _sub(root, n.REGISTRY_OBJECT_LIST)
    for obj in request.objects:
        _append_object(object_list, obj, False)
    for ref in request.object_refs:
        _sub(object_list, n.OBJECT_REF, {"id": ref.id, "home": ref.home})
    return root


def render_adhoc_query_request(query: StoredQuery) -> etree._Element:
    """query:AdhocQueryRequest for a stored query (ITI TF-2a 3.18.4.1.2)."""
    root = _root(n.ADHOC_QUERY_REQUEST)
    if query.max_results is not None:
        root.set("maxResults", str(query.max_results))
    _sub(root, n.RESPONSE_OPTION, {"returnType": query.return_type, "returnComposedObjects": "true"})
    adhoc = _sub(root, n.ADHOC_QUERY, {"id": query.query_id, "home": query.home})
    for name, occurrences in query.parameters.items():
        for values in occurrences:
            _slot(adhoc, name, values)
    return root
