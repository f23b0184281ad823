"""The repository's XML codec: real samples in, schema-valid messages out."""

from __future__ import annotations

import base64
import io

import pytest
from lxml import etree

from hub.errors import MissingDocument, RepositoryMetadataError
from hub.soap.http import BodyLimits, read_soap_request
from registry.vocabulary import ResponseStatus
from repository.model import (
    DocumentRequest,
    ImagingRequest,
    RetrievedDocument,
    RetrieveResult,
    SeriesRequest,
    StudyRequest,
)
from repository.xdsb import (
    cid_href,
    content_id_of,
    parse_imaging_request,
    parse_provide_request,
    parse_retrieve_request,
    parse_retrieve_response,
    render_imaging_request,
    render_provide_request,
    render_retrieve_failure,
    render_retrieve_request,
    render_retrieve_response,
)
from tests.conftest import require_samples
from tests.factories.metadata import pdf_submission
from tests.schema_validation import assert_valid, assert_valid_mtom

PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def sample(relative: str) -> etree._Element:
    return etree.parse(str(require_samples() / relative), PARSER).getroot()


def body(relative: str) -> etree._Element:
    """The Body's element of a sample envelope (some NIST samples lack wsa:MessageID, which the
    hub's SOAP layer refuses; the codec is tested on their bodies)."""
    root = sample(relative)
    if etree.QName(root).localname == "Envelope":
        found = root.find("{http://www.w3.org/2003/05/soap-envelope}Body")
        assert found is not None
        return next(child for child in found if isinstance(child.tag, str))
    return root


def test_inline_provide_sample_yields_metadata_and_decoded_document() -> None:
    request = parse_provide_request(body("iti41/ihe-PnR-request-soap.xml"))
    assert [d.id for d in request.documents] == ["Document01"]
    assert request.documents[0].content_id is None
    assert request.documents[0].inline == base64.b64decode("UjBsR09EbGhjZ0dTQUxNQUFBUUNBRU1tQ1p0dU1GUXhEUzhi")
    assert [e.id for e in request.submission.document_entries] == ["Document01"]


def test_nist_provide_sample_parses_with_its_two_entries_and_no_documents() -> None:
    request = parse_provide_request(body("iti41/nist-soap-pnr.xml"))
    assert {e.id for e in request.submission.document_entries} == {"Document01", "Document02"}
    assert request.documents == []   # metadata only: the repository answers XDSMissingDocument


def test_nist_mtom_http_sample_resolves_its_xop_include() -> None:
    raw = (require_samples() / "iti41/nist-http-mtom-pnr.txt").read_bytes()
    head, _, payload = raw.replace(b" \r\n", b"\r\n").replace(b" \n", b"\n").partition(b"\n\n") \
        if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
    content_type = next(line.split(b":", 1)[1].strip().decode() for line in head.splitlines()
                        if line.lower().startswith(b"content-type"))
    payload = payload if b"\r\n" in payload else payload.replace(b"\n", b"\r\n")
    soap = read_soap_request(content_type, io.BytesIO(payload), BodyLimits(1 << 20, 1 << 22))
    try:
        request = parse_provide_request(soap.body)
        referenced = {d.content_id for d in request.documents}
        assert referenced and referenced <= set(soap.attachments)
    finally:
        soap.close()


def test_rad68_sample_body_is_a_kos_provide_request() -> None:
    request = parse_provide_request(sample("rad68/nist-xdsi-metadata-evaluate.xml"))
    assert [e.mime_type for e in request.submission.document_entries] == ["application/dicom"]


def test_retrieve_request_samples() -> None:
    for name in ("iti43/ihe-RetrieveDocumentSet-request-soap.xml", "iti43/nist-soap-ret-req.xml"):
        requests = parse_retrieve_request(body(name))
        assert requests and all(r.repository_unique_id and r.document_unique_id for r in requests)


def test_rad69_samples() -> None:
    request = parse_imaging_request(sample("rad69/nist-RAD-69Request.xml"))
    assert request.transfer_syntaxes == ("1.2.840.10008.1.2.1",)
    (study,) = request.studies
    assert study.study_instance_uid == "1.3.6.1.4.1.21367.201599.1.201604021948013"
    assert study.series[0].documents[0].document_unique_id == "1.3.6.1.4.1.21367.201599.3.201604021948014"
    with_home = parse_imaging_request(sample("rad69/nist-rad69-request-with-homeCommunityId.xml"))
    assert with_home.studies[0].series[0].documents[0].home_community_id


def test_rad69_empty_study_uid_is_refused() -> None:
    with pytest.raises(RepositoryMetadataError, match="empty studyInstanceUID"):
        parse_imaging_request(sample("rad69/nist-rad69-request-empty-study-uid.xml"))


@pytest.mark.parametrize("xml, message", [
    (b'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007"/>', "no DocumentRequest"),
    (b'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007"><xdsb:DocumentRequest>'
     b'<xdsb:RepositoryUniqueId>1.2</xdsb:RepositoryUniqueId></xdsb:DocumentRequest>'
     b'</xdsb:RetrieveDocumentSetRequest>', "needs RepositoryUniqueId and DocumentUniqueId"),
    (b'<other xmlns="urn:x"/>', "expected xdsb:RetrieveDocumentSetRequest"),
])
def test_bad_retrieve_requests(xml: bytes, message: str) -> None:
    with pytest.raises(RepositoryMetadataError, match=message):
        parse_retrieve_request(etree.fromstring(xml))


def test_bad_inline_document_and_href_are_refused() -> None:
    submission = pdf_submission()
    element = render_provide_request(submission, {})
    document = etree.SubElement(element, "{urn:ihe:iti:xds-b:2007}Document", id=submission.document_entries[0].id)
    document.text = "not base64 !!"
    with pytest.raises(RepositoryMetadataError, match="neither an xop:Include nor base64"):
        parse_provide_request(element)
    with pytest.raises(RepositoryMetadataError, match="not a cid: URL"):
        content_id_of("http://example.org/x")


def test_content_ids_round_trip_through_hrefs() -> None:
    for content_id in ("doc1@xdshub", "a b/c%d@x", "1.urn:uuid:3D4B@apache.org"):
        assert content_id_of(cid_href(content_id)) == content_id


def _document(uid: str) -> RetrievedDocument:
    return RetrievedDocument("1.2.3", uid, "application/pdf", 3, lambda: io.BytesIO(b"abc"))


@pytest.mark.parametrize("documents, errors, status", [
    ([_document("1.1"), _document("1.2")], [], ResponseStatus.SUCCESS),
    ([_document("1.1")], [MissingDocument("document 1.9 is not in this repository", "1.9")],
     ResponseStatus.PARTIAL_SUCCESS),
    ([], [MissingDocument("document 1.9 is not in this repository", "1.9")], ResponseStatus.FAILURE),
])
def test_retrieve_responses_validate_and_read_back(documents: list[RetrievedDocument], errors: list,
                                                   status: ResponseStatus) -> None:
    result = RetrieveResult(documents, errors)
    element = render_retrieve_response(result, [f"part{i}@x" for i in range(len(documents))])
    assert_valid_mtom(element, {f"part{i}@x": b"abc" for i in range(len(documents))})
    answer = parse_retrieve_response(element)
    assert answer.status == status.value
    assert [d.document_unique_id for d in answer.documents] == [d.document_unique_id for d in documents]
    assert [d.content_id for d in answer.documents] == [f"part{i}@x" for i in range(len(documents))]
    assert answer.error_codes == [e.code.value for e in errors]


def test_failure_response_validates() -> None:
    assert_valid(render_retrieve_failure([MissingDocument("gone", "1.2")]))


def test_client_requests_validate_and_parse_back() -> None:
    requests = [DocumentRequest("1.2.3", "1.2.3.4"), DocumentRequest("1.2.3", "1.2.3.5", "urn:oid:1.2")]
    element = render_retrieve_request(requests)
    assert_valid(element)
    assert parse_retrieve_request(element) == requests
    imaging = ImagingRequest((StudyRequest("1.2.1", (SeriesRequest("1.2.1.1", tuple(requests)),)),),
                             ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"))
    element = render_imaging_request(imaging)
    assert_valid(element)
    assert parse_imaging_request(element) == imaging


def test_rendered_provide_request_validates_and_parses_back() -> None:
    submission = pdf_submission()
    entry_id = submission.document_entries[0].id
    element = render_provide_request(submission, {entry_id: "doc@x"})
    assert_valid_mtom(element, {"doc@x": b"%PDF"})
    request = parse_provide_request(element)
    assert [(d.id, d.content_id) for d in request.documents] == [(entry_id, "doc@x")]

