"""The XML codec of the repository and imaging document source: the only repository module importing lxml.

Server side: `parse_provide_request` (ITI-41 / RAD-68, ITI TF-2b 3.41.4.1.2),
`parse_retrieve_request` (ITI-43, ITI TF-2b 3.43.4.1.2),
`parse_imaging_request` (RAD-69, RAD TF-3 4.69.4.1.2) and
`render_retrieve_response` (xdsb:RetrieveDocumentSetResponse, the answer of
both retrieves, every document an xop:Include of an MTOM part).
Client side (publishing, tests, benchmarks): the matching `render_*_request`
and `parse_retrieve_response`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from lxml import etree

from hub.errors import RegistryMetadataError, RepositoryMetadataError, XdsError
from registry.ebrim import parse_submit_objects_request, render_registry_response, render_submit_objects_request
from registry.ebrim.names import REGISTRY_ERROR, REGISTRY_RESPONSE
from registry.model import SubmitObjectsRequest
from registry.vocabulary import NS_XDSB, ErrorCode, ResponseStatus, Severity
from repository.model import (
    DocumentContent,
    DocumentRequest,
    ImagingRequest,
    ProvideRequest,
    RetrieveResult,
    SeriesRequest,
    StudyRequest,
)

NS_XDSI = "urn:ihe:rad:xdsi-b:2009"
NS_XOP = "http://www.w3.org/2004/08/xop/include"


def xdsb(local: str) -> str:
    return f"{{{NS_XDSB}}}{local}"


def xdsi(local: str) -> str:
    return f"{{{NS_XDSI}}}{local}"


PROVIDE_AND_REGISTER = xdsb("ProvideAndRegisterDocumentSetRequest")
RETRIEVE_REQUEST = xdsb("RetrieveDocumentSetRequest")
RETRIEVE_RESPONSE = xdsb("RetrieveDocumentSetResponse")
IMAGING_REQUEST = xdsi("RetrieveImagingDocumentSetRequest")
XOP_INCLUDE = f"{{{NS_XOP}}}Include"


def _text(parent: etree._Element, tag: str) -> str:
    return (parent.findtext(tag) or "").strip()


def _expect(element: etree._Element, tag: str, what: str) -> None:
    if element.tag != tag:
        raise RepositoryMetadataError(f"expected {what}, got {etree.QName(element).localname}")


def cid_href(content_id: str) -> str:
    """The xop:Include href of a MIME part (RFC 2392: cid: and the percent-encoded Content-ID)."""
    return "cid:" + quote(content_id, safe="@.!$&'()*+,;=:-_~")


def content_id_of(href: str) -> str:
    if not href.startswith("cid:"):
        raise RepositoryMetadataError(f"xop:Include href {href[:80]!r} is not a cid: URL (XOP 1.0, RFC 2392)")
    return unquote(href[4:])


# -- ITI-41 / RAD-68 ---------------------------------------------------------------------------------------

def _document_content(element: etree._Element) -> DocumentContent:
    document_id = (element.get("id") or "").strip()
    if not document_id:
        raise RepositoryMetadataError("xdsb:Document has no id attribute (ITI TF-2b 3.41.4.1.2)")
    include = element.find(XOP_INCLUDE)
    if include is not None:
        return DocumentContent(document_id, content_id=content_id_of(include.get("href") or ""))
    try:
        return DocumentContent(document_id, inline=base64.b64decode("".join((element.text or "").split()),
                                                                     validate=True))
    except (binascii.Error, ValueError):
        raise RepositoryMetadataError(f"xdsb:Document {document_id!r} is neither an xop:Include nor base64",
                                      document_id) from None


def parse_provide_request(element: etree._Element) -> ProvideRequest:
    """xdsb:ProvideAndRegisterDocumentSetRequest: the metadata and where each document's bytes are."""
    _expect(element, PROVIDE_AND_REGISTER, "xdsb:ProvideAndRegisterDocumentSetRequest")
    try:
        submission = parse_submit_objects_request(element)
    except RegistryMetadataError as exc:
        raise RepositoryMetadataError(exc.message, exc.location) from None
    documents = [_document_content(el) for el in element.iterchildren(xdsb("Document"))]
    return ProvideRequest(submission, documents)


def render_provide_request(submission: SubmitObjectsRequest, content_ids: dict[str, str]) -> etree._Element:
    """Client side: the request body, each document (DocumentEntry id → Content-ID) as an xop:Include."""
    root = etree.Element(PROVIDE_AND_REGISTER, nsmap={"xdsb": NS_XDSB, "xop": NS_XOP})
    root.append(render_submit_objects_request(submission))
    for document_id, content_id in content_ids.items():
        document = etree.SubElement(root, xdsb("Document"), id=document_id)
        etree.SubElement(document, XOP_INCLUDE, href=cid_href(content_id))
    return root


# -- ITI-43 / RAD-69 requests ------------------------------------------------------------------------------

def _document_request(element: etree._Element) -> DocumentRequest:
    repository = _text(element, xdsb("RepositoryUniqueId"))
    document = _text(element, xdsb("DocumentUniqueId"))
    if not repository or not document:
        raise RepositoryMetadataError("xdsb:DocumentRequest needs RepositoryUniqueId and DocumentUniqueId "
                                      "(ITI TF-2b 3.43.4.1.2)")
    return DocumentRequest(repository, document, _text(element, xdsb("HomeCommunityId")) or None)


def parse_retrieve_request(element: etree._Element) -> list[DocumentRequest]:
    _expect(element, RETRIEVE_REQUEST, "xdsb:RetrieveDocumentSetRequest")
    requests = [_document_request(el) for el in element.iterchildren(xdsb("DocumentRequest"))]
    if not requests:
        raise RepositoryMetadataError("xdsb:RetrieveDocumentSetRequest holds no DocumentRequest")
    return requests


def parse_imaging_request(element: etree._Element) -> ImagingRequest:
    _expect(element, IMAGING_REQUEST, "xdsi:RetrieveImagingDocumentSetRequest")
    studies = []
    for study in element.iterchildren(xdsi("StudyRequest")):
        study_uid = (study.get("studyInstanceUID") or "").strip()
        if not study_uid:
            raise RepositoryMetadataError("xdsi:StudyRequest has an empty studyInstanceUID (RAD TF-3 4.69.4.1.2)")
        series = []
        for series_el in study.iterchildren(xdsi("SeriesRequest")):
            series_uid = (series_el.get("seriesInstanceUID") or "").strip()
            if not series_uid:
                raise RepositoryMetadataError(f"a SeriesRequest of study {study_uid} has an empty "
                                              "seriesInstanceUID (RAD TF-3 4.69.4.1.2)")
            documents = tuple(_document_request(el) for el in series_el.iterchildren(xdsb("DocumentRequest")))
            if not documents:
                raise RepositoryMetadataError(f"SeriesRequest {series_uid} holds no DocumentRequest")
            series.append(SeriesRequest(series_uid, documents))
        if not series:
            raise RepositoryMetadataError(f"StudyRequest {study_uid} holds no SeriesRequest")
        studies.append(StudyRequest(study_uid, tuple(series)))
    if not studies:
        raise RepositoryMetadataError("xdsi:RetrieveImagingDocumentSetRequest holds no StudyRequest")
    syntax_list = element.find(xdsi("TransferSyntaxUIDList"))
    if syntax_list is None:
        raise RepositoryMetadataError("xdsi:TransferSyntaxUIDList is required (RAD TF-3 4.69.4.1.2)")
    syntaxes = tuple(s for s in ((el.text or "").strip() for el in syntax_list.iterchildren(xdsi("TransferSyntaxUID")))
                     if s)
    if not syntaxes:
        raise RepositoryMetadataError("xdsi:TransferSyntaxUIDList names no transfer syntax")
    return ImagingRequest(tuple(studies), syntaxes)


def _document_request_element(parent: etree._Element, request: DocumentRequest) -> None:
    element = etree.SubElement(parent, xdsb("DocumentRequest"))
    if request.home_community_id:
        etree.SubElement(element, xdsb("HomeCommunityId")).text = request.home_community_id
    etree.SubElement(element, xdsb("RepositoryUniqueId")).text = request.repository_unique_id
    etree.SubElement(element, xdsb("DocumentUniqueId")).text = request.document_unique_id


def render_retrieve_request(requests: Iterable[DocumentRequest]) -> etree._Element:
    root = etree.Element(RETRIEVE_REQUEST, nsmap={"xdsb": NS_XDSB})
    for request in requests:
        _document_request_element(root, request)
    return root


def render_imaging_request(request: ImagingRequest) -> etree._Element:
    root = etree.Element(IMAGING_REQUEST, nsmap={"xdsi": NS_XDSI, "xdsb": NS_XDSB})
    for study in request.studies:
        study_el = etree.SubElement(root, xdsi("StudyRequest"), studyInstanceUID=study.study_instance_uid)
        for series in study.series:
            series_el = etree.SubElement(study_el, xdsi("SeriesRequest"), seriesInstanceUID=series.series_instance_uid)
            for document in series.documents:
                _document_request_element(series_el, document)
    syntaxes = etree.SubElement(root, xdsi("TransferSyntaxUIDList"))
    for uid in request.transfer_syntaxes:
        etree.SubElement(syntaxes, xdsi("TransferSyntaxUID")).text = uid
    return root


# -- the response --------------------------------------------------------------------------------------------

def render_retrieve_response(result: RetrieveResult, content_ids: Sequence[str]) -> etree._Element:
    """xdsb:RetrieveDocumentSetResponse: RegistryResponse, then one DocumentResponse per document found.

    `content_ids[i]` is the MIME part of `result.documents[i]` (ITI TF-2b 3.43.4.2.2).
    """
    root = etree.Element(RETRIEVE_RESPONSE, nsmap={"xdsb": NS_XDSB, "xop": NS_XOP})
    root.append(render_registry_response(result.status, result.errors))
    for document, content_id in zip(result.documents, content_ids, strict=True):
        element = etree.SubElement(root, xdsb("DocumentResponse"))
        if document.home_community_id:
            etree.SubElement(element, xdsb("HomeCommunityId")).text = document.home_community_id
        etree.SubElement(element, xdsb("RepositoryUniqueId")).text = document.repository_unique_id
        etree.SubElement(element, xdsb("DocumentUniqueId")).text = document.document_unique_id
        etree.SubElement(element, xdsb("mimeType")).text = document.mime_type
        include_parent = etree.SubElement(element, xdsb("Document"))
        etree.SubElement(include_parent, XOP_INCLUDE, href=cid_href(content_id))
    return root


def render_retrieve_failure(errors: list[XdsError]) -> etree._Element:
    return render_retrieve_response(RetrieveResult([], errors), [])


@dataclass(frozen=True)
class DocumentResponse:
    """Client side: one xdsb:DocumentResponse; exactly one of content_id (MTOM) and inline is set."""

    repository_unique_id: str
    document_unique_id: str
    mime_type: str
    content_id: str | None
    inline: bytes | None
    home_community_id: str | None = None


@dataclass(frozen=True)
class RetrieveAnswer:
    status: str
    documents: list[DocumentResponse]
    error_codes: list[str]
    errors: tuple[XdsError, ...] = ()     # the RegistryErrors, as errors to pass on (retrieve forwarding)


def _registry_error(element: etree._Element) -> XdsError:
    """An rs:RegistryError as an XdsError; a code this hub does not know becomes XDSRepositoryError naming it."""
    text = element.get("errorCode", "")
    message = element.get("codeContext") or " ".join((element.text or "").split()) or text
    try:
        code = ErrorCode(text)
    except ValueError:
        code, message = ErrorCode.REPOSITORY_ERROR, f"{text[:80]}: {message}"
    try:
        severity = Severity(element.get("severity", ""))
    except ValueError:
        severity = Severity.ERROR
    return XdsError(message, element.get("location", ""), code, severity)


def parse_retrieve_response(element: etree._Element) -> RetrieveAnswer:
    _expect(element, RETRIEVE_RESPONSE, "xdsb:RetrieveDocumentSetResponse")
    registry_response = element.find(REGISTRY_RESPONSE)
    status = registry_response.get("status", "") if registry_response is not None else ""
    codes = [e.get("errorCode", "") for e in element.iter(REGISTRY_ERROR)]
    documents = []
    for el in element.iterchildren(xdsb("DocumentResponse")):
        document = el.find(xdsb("Document"))
        include = document.find(XOP_INCLUDE) if document is not None else None
        inline = None if include is not None or document is None else base64.b64decode(document.text or "")
        documents.append(DocumentResponse(
            _text(el, xdsb("RepositoryUniqueId")), _text(el, xdsb("DocumentUniqueId")), _text(el, xdsb("mimeType")),
            content_id_of(include.get("href") or "") if include is not None else None, inline,
            _text(el, xdsb("HomeCommunityId")) or None))
    return RetrieveAnswer(ResponseStatus(status).value if status else "", documents, codes,
                          tuple(_registry_error(e) for e in element.iter(REGISTRY_ERROR)))
