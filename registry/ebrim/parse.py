"""Reading ebRS 3.0 requests into `registry.model` objects.

Structure only: what ebRIM 3.0 (rim.xsd) and ITI TF-3 4.2.1 say an element
must carry, and no element the model could not keep (an unknown child would
otherwise be dropped silently). XDS meaning (required attributes, codes,
patient ids, which object a nested Classification names) is checked by
`registry.validation`, which reports every problem at once. Every problem
found here raises `RegistryMetadataError` naming the element, its id and its
line, so a Document Source can find it.
"""

from __future__ import annotations

from lxml import etree

from hub.errors import RegistryMetadataError, XdsError
from registry.ebrim import names as n
from registry.model import (
    AnyObject,
    Association,
    Classification,
    ExternalIdentifier,
    ExtrinsicObject,
    ObjectRef,
    RegistryObject,
    RegistryPackage,
    StoredQuery,
    SubmitObjectsRequest,
)
from registry.vocabulary import ReturnType

_TRUE = ("true", "1")


def _where(el: etree._Element) -> str:
    ident = el.get("id")
    label = n.prefixed(el.tag) + (f"[@id='{ident}']" if ident else "")
    return f"{label} (line {el.sourceline})" if el.sourceline else label


def _fail(el: etree._Element, message: str) -> XdsError:
    return RegistryMetadataError(f"{n.prefixed(el.tag)}: {message}", _where(el))


def _required(el: etree._Element, attribute: str) -> str:
    value = (el.get(attribute) or "").strip()
    if not value:
        raise _fail(el, f"attribute {attribute} is required (ebRIM 3.0)")
    return value


def _children(el: etree._Element, tag: str) -> list[etree._Element]:
    return [c for c in el if c.tag == tag]


# What each element may hold (rim.xsd types) and the model keeps. Comments and
# processing instructions are skipped; anything else is refused.
_DESCRIBED = frozenset({n.SLOT, n.NAME, n.DESCRIPTION, n.VERSION_INFO})
_REGISTRY_OBJECT = _DESCRIBED | {n.CLASSIFICATION, n.EXTERNAL_IDENTIFIER}
_ALLOWED = {
    n.EXTRINSIC_OBJECT: _REGISTRY_OBJECT | {n.CONTENT_VERSION_INFO},
    n.REGISTRY_PACKAGE: _REGISTRY_OBJECT,
    n.ASSOCIATION: _REGISTRY_OBJECT,
    n.CLASSIFICATION: _DESCRIBED,
    n.EXTERNAL_IDENTIFIER: _DESCRIBED,
}


def _check_children(el: etree._Element) -> None:
    allowed = _ALLOWED[el.tag]
    for child in el:
        if isinstance(child.tag, str) and child.tag not in allowed:
            raise _fail(child, f"is not allowed in {n.prefixed(el.tag)} (ebRIM 3.0 rim.xsd, ITI TF-3 4.2.1)")


def parse_slots(el: etree._Element) -> dict[str, list[str]]:
    """rim:Slot children: name -> values in order. Slot names are unique per object (ebRIM 3.0 2.8.2)."""
    slots: dict[str, list[str]] = {}
    for slot in _children(el, n.SLOT):
        name = _required(slot, "name")
        if name in slots:
            raise _fail(el, f"slot {name!r} appears twice (slot names are unique within an object)")
        value_list = slot.find(n.VALUE_LIST)
        values = [] if value_list is None else [v.text or "" for v in _children(value_list, n.VALUE)]
        slots[name] = values
    return slots


def _localized(el: etree._Element, tag: str) -> str | None:
    """The first LocalizedString of rim:Name or rim:Description (ITI TF-3 4.2.3.1.4)."""
    holder = el.find(tag)
    if holder is None:
        return None
    strings = _children(holder, n.LOCALIZED_STRING)
    return strings[0].get("value") if strings else None


def _classification(el: etree._Element, owner: str | None) -> Classification:
    """A Classification; nested ones default classifiedObject to their parent (validation checks it)."""
    _check_children(el)
    ident = _required(el, "id")
    classified = (el.get("classifiedObject") or "").strip() or owner
    if not classified:
        raise _fail(el, "attribute classifiedObject is required (ebRIM 3.0)")
    scheme = el.get("classificationScheme") or None
    node = el.get("classificationNode") or None
    if scheme is None and node is None:
        raise _fail(el, "needs a classificationScheme or a classificationNode (ebRIM 3.0 4.3)")
    return Classification(id=ident, classified_object=classified, scheme=scheme, node=node,
                          node_representation=el.get("nodeRepresentation") or "",
                          name=_localized(el, n.NAME), slots=parse_slots(el))


def _external_identifier(el: etree._Element, owner: str) -> ExternalIdentifier:
    _check_children(el)
    ident = _required(el, "id")
    registry_object = (el.get("registryObject") or "").strip() or owner
    value = el.get("value")
    if value is None:
        raise _fail(el, "attribute value is required (ebRIM 3.0)")
    return ExternalIdentifier(id=ident, registry_object=registry_object,
                              scheme=_required(el, "identificationScheme"), value=value.strip(),
                              name=_localized(el, n.NAME))


def _fill(obj: RegistryObject, el: etree._Element) -> None:
    """What every RegistryObject carries (ebRIM 3.0 2.5): attributes, slots, names, nested objects."""
    obj.lid = el.get("lid") or None
    obj.status = el.get("status") or None
    obj.home = el.get("home") or None
    obj.name = _localized(el, n.NAME)
    obj.description = _localized(el, n.DESCRIPTION)
    obj.slots = parse_slots(el)
    version = el.find(n.VERSION_INFO)
    if version is not None and version.get("versionName"):
        obj.version = version.get("versionName", "1")
    obj.classifications = [_classification(c, obj.id) for c in _children(el, n.CLASSIFICATION)]
    obj.external_identifiers = [_external_identifier(e, obj.id) for e in _children(el, n.EXTERNAL_IDENTIFIER)]


def parse_registry_object(el: etree._Element) -> AnyObject:
    """One ExtrinsicObject, RegistryPackage or Association of a RegistryObjectList."""
    ident = _required(el, "id")
    obj: AnyObject
    if el.tag == n.EXTRINSIC_OBJECT:
        obj = ExtrinsicObject(id=ident, object_type=el.get("objectType") or "",
                              mime_type=el.get("mimeType") or "",
                              is_opaque=(el.get("isOpaque") or "").strip().lower() in _TRUE)
    elif el.tag == n.REGISTRY_PACKAGE:
        if el.find(n.REGISTRY_OBJECT_LIST) is not None:
            raise _fail(el, "nested RegistryObjectList is not allowed in XDS metadata (ITI TF-3 4.2.1.1)")
        obj = RegistryPackage(id=ident, object_type=el.get("objectType") or "")
    elif el.tag == n.ASSOCIATION:
        obj = Association(id=ident, object_type=el.get("objectType") or "",
                          association_type=_required(el, "associationType"),
                          source=_required(el, "sourceObject"), target=_required(el, "targetObject"))
    else:
        raise _fail(el, "is not an XDS metadata object (ExtrinsicObject, RegistryPackage, Association, "
                        "Classification or ObjectRef; ITI TF-3 4.2.1)")
    _check_children(el)
    _fill(obj, el)
    return obj


def parse_object_list(object_list: etree._Element) -> tuple[list[AnyObject], list[ObjectRef]]:
    """A rim:RegistryObjectList: objects in document order, top-level Classifications attached.

    A top-level Classification (ITI TF-3 4.2.1.2: the one classifying a
    RegistryPackage as SubmissionSet or Folder) joins the classifications of
    the object it classifies, which must be in the same list.
    """
    objects: list[AnyObject] = []
    refs: list[ObjectRef] = []
    loose: list[tuple[etree._Element, Classification]] = []
    for el in object_list:
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        if el.tag == n.OBJECT_REF:
            refs.append(ObjectRef(id=_required(el, "id"), home=el.get("home") or None))
        elif el.tag == n.CLASSIFICATION:
            loose.append((el, _classification(el, None)))
        else:
            objects.append(parse_registry_object(el))
    by_id = {o.id: o for o in objects}
    for el, classification in loose:
        target = by_id.get(classification.classified_object)
        if target is None:
            raise _fail(el, f"classifies {classification.classified_object!r}, which is not an object of "
                            "this submission (ITI TF-3 4.2.1.2)")
        target.classifications.append(classification)
    return objects, refs


def parse_submit_objects_request(element: etree._Element) -> SubmitObjectsRequest:
    """An lcm:SubmitObjectsRequest (ITI-42 body, ITI TF-2b 3.42.4.1.2).

    The xdsb:ProvideAndRegisterDocumentSetRequest of ITI-41 is accepted too:
    its SubmitObjectsRequest child is read (ITI TF-2b 3.41.4.1.2).
    """
    if element.tag == n.PROVIDE_AND_REGISTER:
        inner = element.find(n.SUBMIT_OBJECTS_REQUEST)
        if inner is None:
            raise _fail(element, "has no lcm:SubmitObjectsRequest (ITI TF-2b 3.41.4.1.2)")
        element = inner
    if element.tag != n.SUBMIT_OBJECTS_REQUEST:
        raise RegistryMetadataError(f"expected lcm:SubmitObjectsRequest, got {n.prefixed(element.tag)}",
                                    _where(element))
    object_list = element.find(n.REGISTRY_OBJECT_LIST)
    if object_list is None:
        raise _fail(element, "has no rim:RegistryObjectList (lcm.xsd)")
    objects, refs = parse_object_list(object_list)
    return SubmitObjectsRequest(objects, refs)


def parse_adhoc_query_request(element: etree._Element) -> StoredQuery:
    """A query:AdhocQueryRequest naming a stored query (ITI TF-2a 3.18.4.1.2).

    Only ObjectRef and LeafClass are XDS return types (ITI TF-2a 3.18.4.1.2.1);
    query.xsd's default (RegistryObject, when returnType is absent) is refused
    too. ITI TF-2a names no error code for it, so the request is answered like
    every other malformed query parameter of this registry, with
    XDSRegistryMetadataError (`registry.queries.params` does the same).
    Each Slot is one parameter occurrence; repeated names keep every slot in order.
    """
    if element.tag != n.ADHOC_QUERY_REQUEST:
        raise RegistryMetadataError(f"expected query:AdhocQueryRequest, got {n.prefixed(element.tag)}",
                                    _where(element))
    option = element.find(n.RESPONSE_OPTION)
    if option is None:
        raise _fail(element, "has no query:ResponseOption (query.xsd)")
    return_type = option.get("returnType") or "RegistryObject"
    if return_type not in {t.value for t in ReturnType}:
        raise _fail(option, f"returnType {return_type!r} is not ObjectRef or LeafClass (ITI TF-2a 3.18.4.1.2.1)")
    adhoc = element.find(n.ADHOC_QUERY)
    if adhoc is None:
        raise _fail(element, "has no rim:AdhocQuery (query.xsd)")
    parameters: dict[str, list[list[str]]] = {}
    for slot in _children(adhoc, n.SLOT):
        value_list = slot.find(n.VALUE_LIST)
        values = [] if value_list is None else [v.text or "" for v in _children(value_list, n.VALUE)]
        parameters.setdefault(_required(slot, "name"), []).append(values)
    max_results = (element.get("maxResults") or "").strip()
    try:
        limit = int(max_results) if max_results else None
    except ValueError:
        raise _fail(element, f"maxResults {max_results!r} is not an integer") from None
    return StoredQuery(query_id=_required(adhoc, "id"), return_type=return_type, parameters=parameters,
                       home=adhoc.get("home") or None,
                       max_results=limit if limit is not None and limit >= 0 else None)
