"""The ebRIM codec: round trips, faithful LeafClass, structural errors, schema validity."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from lxml import etree

from hub.errors import (
    DuplicateUniqueIdInMessage,
    DuplicateUniqueIdInRegistry,
    RegistryMetadataError,
    XdsError,
)
from registry.ebrim import (
    parse_adhoc_query_request,
    parse_submit_objects_request,
    render_adhoc_query_request,
    render_adhoc_query_response,
    render_objects,
    render_registry_response,
    render_submit_objects_request,
)
from registry.model import Association, ObjectRef, StoredQuery
from registry.vocabulary import (
    NS_LCM,
    NS_QUERY,
    NS_RIM,
    NS_RS,
    NS_XDSB,
    REGISTRY_PACKAGE_TYPE,
    AvailabilityStatus,
    ErrorCode,
    ResponseStatus,
    Severity,
    StoredQueryId,
    SubmissionSetScheme,
)
from tests.factories.metadata import PATIENT, folder, submission, symbolic_ids
from tests.schema_validation import assert_valid

PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
RIM = f'xmlns:rim="{NS_RIM}"'
LCM = f'xmlns:lcm="{NS_LCM}"'


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.encode(), PARSER)


def submit(objects: str) -> etree._Element:
    return xml(f"<lcm:SubmitObjectsRequest {LCM} {RIM}><rim:RegistryObjectList>{objects}"
               "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>")


# -- round trips ----------------------------------------------------------------------
def test_submission_round_trip_is_exact_and_valid() -> None:
    request = submission(documents=2, folders=1)
    request.object_refs.append(ObjectRef("urn:uuid:2f1e4c3a-1111-4222-8333-444455556666", "urn:oid:1.2.3"))
    doc = request.document_entries[0]
    doc.description, doc.home, doc.is_opaque, doc.version = "Comments", "urn:oid:1.2.3", True, "2"
    doc.status = AvailabilityStatus.APPROVED.value
    element = render_submit_objects_request(request)
    assert_valid(element)
    assert parse_submit_objects_request(element) == request
    # also after serialisation, as a peer would read it
    assert parse_submit_objects_request(xml(etree.tostring(element).decode())) == request


def test_symbolic_ids_round_trip() -> None:
    request = symbolic_ids(submission(folders=1))
    element = render_submit_objects_request(request)
    assert_valid(element)
    assert parse_submit_objects_request(element) == request


def test_provide_and_register_wrapper_is_accepted() -> None:
    request = submission()
    wrapper = etree.Element(f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest")
    wrapper.append(render_submit_objects_request(request))
    assert parse_submit_objects_request(wrapper) == request


def test_top_level_classification_joins_its_package() -> None:
    element = submit(
        '<rim:RegistryPackage id="SS"><rim:Name><rim:LocalizedString value="s"/></rim:Name></rim:RegistryPackage>'
        f'<rim:Classification id="c1" classifiedObject="SS" classificationNode="{SubmissionSetScheme.NODE.value}"/>')
    package = parse_submit_objects_request(element).packages[0]
    assert package.is_submission_set
    assert package.classifications[0].classified_object == "SS"
    assert package.name == "s"


def test_slots_values_and_empty_description() -> None:
    element = submit(
        '<rim:ExtrinsicObject id="D" mimeType="text/plain" objectType="urn:x">'
        '<rim:Slot name="sourcePatientInfo"><rim:ValueList><rim:Value>PID-3|a</rim:Value>'
        '<rim:Value>PID-5|b</rim:Value></rim:ValueList></rim:Slot><rim:Description/>'
        '<rim:VersionInfo versionName="3"/></rim:ExtrinsicObject>')
    doc = parse_submit_objects_request(element).document_entries[0]
    assert doc.slots == {"sourcePatientInfo": ["PID-3|a", "PID-5|b"]}
    assert doc.description is None and doc.version == "3" and doc.mime_type == "text/plain"


def test_query_round_trip_keeps_repeated_slots() -> None:
    query = StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, "LeafClass", {
        "$XDSDocumentEntryPatientId": [[f"'{PATIENT}'"]],
        "$XDSDocumentEntryEventCodeList": [["('a^^1')", "('b^^1')"], ["('c^^1')"]],
    }, home="urn:oid:1.2.3", max_results=25)
    element = render_adhoc_query_request(query)
    assert_valid(element)
    assert parse_adhoc_query_request(element) == query


@pytest.mark.parametrize("return_type", ["RegistryObject", "LeafClassWithRepositoryItem"])
def test_query_return_type_must_be_object_ref_or_leaf_class(return_type: str) -> None:
    element = render_adhoc_query_request(StoredQuery(StoredQueryId.GET_ALL.value, "ObjectRef", {}))
    element.find(f"{{{NS_QUERY}}}ResponseOption").set("returnType", return_type)
    with pytest.raises(RegistryMetadataError, match="returnType"):
        parse_adhoc_query_request(element)


def test_query_default_return_type_is_refused() -> None:
    element = render_adhoc_query_request(StoredQuery(StoredQueryId.GET_ALL.value, "ObjectRef", {}))
    del element.find(f"{{{NS_QUERY}}}ResponseOption").attrib["returnType"]
    with pytest.raises(RegistryMetadataError):
        parse_adhoc_query_request(element)


# -- structural errors ----------------------------------------------------------------
EO = '<rim:ExtrinsicObject id="D" objectType="urn:x">{}</rim:ExtrinsicObject>'
STRUCTURE_ERRORS = [
    ("object without id", '<rim:ExtrinsicObject objectType="urn:x"/>', "attribute id is required"),
    ("unsupported element", '<rim:ExternalLink id="L" externalURI="http://x"/>', "not an XDS metadata object"),
    ("association without target", '<rim:Association id="A" associationType="t" sourceObject="S"/>',
     "targetObject is required"),
    ("classification without scheme or node",
     EO.format('<rim:Classification id="c" classifiedObject="D"/>'), "classificationScheme or"),
    ("unknown child element", EO.format('<rim:Foo/>'), "rim:Foo: is not allowed in rim:ExtrinsicObject"),
    ("child from another namespace", EO.format('<x:Document xmlns:x="urn:ihe:iti:xds-b:2007"/>'),
     "is not allowed in rim:ExtrinsicObject"),
    ("classification nested in a classification",
     EO.format('<rim:Classification id="c" classificationScheme="urn:s"><rim:Classification id="c2" '
               'classificationScheme="urn:s"/></rim:Classification>'), "is not allowed in rim:Classification"),
    ("object list inside an association",
     '<rim:Association id="A" associationType="t" sourceObject="S" targetObject="T"><rim:RegistryObjectList/>'
     '</rim:Association>', "is not allowed in rim:Association"),
    ("external identifier without value",
     EO.format('<rim:ExternalIdentifier id="e" registryObject="D" identificationScheme="urn:s"/>'),
     "attribute value is required"),
    ("duplicate slot",
     EO.format('<rim:Slot name="a"><rim:ValueList/></rim:Slot><rim:Slot name="a"><rim:ValueList/></rim:Slot>'),
     "appears twice"),
    ("loose classification of an unknown object",
     '<rim:Classification id="c" classifiedObject="nowhere" classificationNode="urn:n"/>', "not an object of"),
    ("nested object list", '<rim:RegistryPackage id="P"><rim:RegistryObjectList/></rim:RegistryPackage>',
     "nested RegistryObjectList"),
]


@pytest.mark.parametrize(("case", "objects", "message"), STRUCTURE_ERRORS, ids=[c[0] for c in STRUCTURE_ERRORS])
def test_structural_errors_name_element_and_line(case: str, objects: str, message: str) -> None:
    with pytest.raises(RegistryMetadataError, match=message) as caught:
        parse_submit_objects_request(submit(objects))
    assert "line 1" in caught.value.location


def test_nested_objects_naming_another_object_are_kept_for_validation() -> None:
    """A nested Classification or ExternalIdentifier naming another object parses as sent;
    registry.validation reports it together with every other problem (ITI TF-3 4.2.3.1)."""
    doc = parse_submit_objects_request(submit(EO.format(
        '<rim:Classification id="c" classifiedObject="X" classificationScheme="urn:s"/>'
        '<rim:ExternalIdentifier id="e" registryObject="Y" identificationScheme="urn:s" value="v"/>'
        '<rim:ContentVersionInfo versionName="1"/>'))).document_entries[0]
    assert doc.classifications[0].classified_object == "X"
    assert doc.external_identifiers[0].registry_object == "Y"


def test_comments_are_skipped() -> None:
    request = parse_submit_objects_request(submit(
        '<!-- a comment --><rim:ObjectRef id="urn:uuid:2f1e4c3a-1111-4222-8333-444455556666"/>'
        + EO.format("<!-- inside -->")))
    assert [o.id for o in request.objects] == ["D"] and len(request.object_refs) == 1


def test_wrong_root_and_missing_object_list() -> None:
    with pytest.raises(RegistryMetadataError, match="expected lcm:SubmitObjectsRequest"):
        parse_submit_objects_request(xml(f"<rim:RegistryObjectList {RIM}/>"))
    with pytest.raises(RegistryMetadataError, match="RegistryObjectList"):
        parse_submit_objects_request(xml(f"<lcm:SubmitObjectsRequest {LCM}/>"))
    with pytest.raises(RegistryMetadataError, match="AdhocQueryRequest"):
        parse_adhoc_query_request(xml(f"<lcm:SubmitObjectsRequest {LCM}/>"))


# -- responses ------------------------------------------------------------------------
def test_registry_response_success_has_no_error_list() -> None:
    element = render_registry_response(ResponseStatus.SUCCESS, [])
    assert_valid(element)
    assert element.tag == f"{{{NS_RS}}}RegistryResponse" and len(element) == 0
    assert element.get("status") == ResponseStatus.SUCCESS.value


def test_registry_response_lists_every_error() -> None:
    errors: list[XdsError] = [
        RegistryMetadataError("no patient", "urn:uuid:1"),
        DuplicateUniqueIdInRegistry("again"),
        XdsError("just so", code=ErrorCode.REGISTRY_ERROR, severity=Severity.WARNING),
    ]
    element = render_registry_response(ResponseStatus.FAILURE, errors)
    assert_valid(element)
    listed = element.findall(f"{{{NS_RS}}}RegistryErrorList/{{{NS_RS}}}RegistryError")
    assert [(e.get("errorCode"), e.get("codeContext"), e.get("location"), e.get("severity")) for e in listed] == [
        ("XDSRegistryMetadataError", "no patient", "urn:uuid:1", Severity.ERROR.value),
        ("XDSDuplicateUniqueIdInRegistry", "again", None, Severity.ERROR.value),
        ("XDSRegistryError", "just so", None, Severity.WARNING.value),
    ]
    assert element.find(f"{{{NS_RS}}}RegistryErrorList").get("highestSeverity") == Severity.ERROR.value


def test_leaf_class_response_is_faithful() -> None:
    request = submission(folders=1)
    for obj in request.objects:
        obj.status, obj.lid = AvailabilityStatus.APPROVED.value, obj.id
    request.document_entries[0].home = "urn:oid:1.3.6.1.4.1.21367.2026.1"
    element = render_adhoc_query_response(ResponseStatus.SUCCESS, list(request.objects), None, [])
    assert_valid(element)
    listed = element.find(f"{{{NS_RIM}}}RegistryObjectList")
    doc_el = listed.find(f"{{{NS_RIM}}}ExtrinsicObject")
    doc = request.document_entries[0]
    assert (doc_el.get("mimeType"), doc_el.get("status"), doc_el.get("objectType"), doc_el.get("lid"),
            doc_el.get("home")) == (doc.mime_type, doc.status, doc.object_type, doc.lid, doc.home)
    assert doc_el.find(f"{{{NS_RIM}}}VersionInfo").get("versionName") == "1"
    package_nodes = [c.get("classificationNode") for c in listed.iterfind(f"{{{NS_RIM}}}RegistryPackage/"
                                                                          f"{{{NS_RIM}}}Classification")]
    assert SubmissionSetScheme.NODE.value in package_nodes
    # the LeafClass list reads back as the same objects
    wrapper = etree.Element(f"{{{NS_LCM}}}SubmitObjectsRequest")
    wrapper.append(listed)
    assert parse_submit_objects_request(wrapper).objects == request.objects


def test_object_ref_response_and_failure_response() -> None:
    refs = ["urn:uuid:2f1e4c3a-1111-4222-8333-444455556666"]
    element = render_adhoc_query_response(ResponseStatus.SUCCESS, None, refs, [])
    assert_valid(element)
    assert [r.get("id") for r in element.iter(f"{{{NS_RIM}}}ObjectRef")] == refs
    failure = render_adhoc_query_response(ResponseStatus.FAILURE, None, None, [RegistryMetadataError("bad")])
    assert_valid(failure)
    assert failure.find(f"{{{NS_RIM}}}RegistryObjectList") is not None


def test_render_objects_standalone_elements_validate() -> None:
    elements = render_objects([folder(), *submission().objects])
    for element in elements:
        assert_valid(element)
    assert etree.QName(elements[0]).localname == "RegistryPackage"


# -- golden messages (tests/fixtures/registry, each file says what it holds) ----------
FIXTURES = Path(__file__).parents[2] / "fixtures" / "registry"


def golden(name: str) -> etree._Element:
    return etree.parse(str(FIXTURES / name), PARSER).getroot()


def test_golden_submission_with_top_level_classifications() -> None:
    element = golden("iti42-folder-symbolic-ids.xml")
    assert_valid(element)
    request = parse_submit_objects_request(element)
    assert [p.kind.value for p in request.packages] == ["SubmissionSet", "Folder"]
    assert request.document_entries[0].unique_id == "1.3.6.1.4.1.21367.2026.7.100.1"
    assert len(request.associations) == 3 and not request.object_refs


def leaf_class_of_golden_submission() -> etree._Element:
    """The golden submission as a stored query returns it (see iti18-response-leafclass.xml)."""
    request = parse_submit_objects_request(golden("iti42-folder-symbolic-ids.xml"))

    def fixed(ident: str) -> str:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'xdshub-golden:' + ident)}"

    for obj in request.objects:
        obj.id = fixed(obj.id)
        for c in obj.classifications:
            c.id, c.classified_object = fixed(c.id), obj.id
        for e in obj.external_identifiers:
            e.id, e.registry_object = fixed(e.id), obj.id
        if isinstance(obj, Association):
            obj.source, obj.target = fixed(obj.source), fixed(obj.target)
        obj.status, obj.lid = AvailabilityStatus.APPROVED.value, obj.id
    for package in request.packages:
        package.object_type = REGISTRY_PACKAGE_TYPE
    request.folders[0].slots["lastUpdateTime"] = ["20260201120000"]
    return render_adhoc_query_response(ResponseStatus.SUCCESS, list(request.objects), None, [])


def canonical(element: etree._Element) -> bytes:
    strip = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    return bytes(etree.tostring(etree.fromstring(etree.tostring(element), strip), method="c14n"))


def test_golden_leaf_class_response() -> None:
    rendered = leaf_class_of_golden_submission()
    assert_valid(rendered)
    assert canonical(rendered) == canonical(golden("iti18-response-leafclass.xml"))


def test_golden_failure_response() -> None:
    errors: list[XdsError] = [
        RegistryMetadataError("DocumentEntry sym05: slot hash is required (ITI TF-3 4.2.3)", "sym05"),
        DuplicateUniqueIdInMessage("uniqueId 1.2.3 is used 2 times in the submission", "1.2.3"),
    ]
    rendered = render_registry_response(ResponseStatus.FAILURE, errors)
    assert_valid(rendered)
    assert canonical(rendered) == canonical(golden("iti42-response-failure.xml"))
