"""The other side of the repository transactions, over `hub.client.HubClient`.

A Document Source providing documents (ITI-41 / RAD-68) and a Document
Consumer retrieving them (ITI-43, RAD-69), as the demo, the benchmarks and
the functional tests speak to a hub. Documents are sent and received as
MTOM parts streamed from and to files, never whole in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from hub.client import HubClient, SoapAnswer
from hub.soap.mtom import Attachment, OutgoingPart
from registry.model import SubmitObjectsRequest
from repository.model import DocumentRequest, ImagingRequest
from repository.vocabulary import ACTION_PROVIDE, ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING
from repository.xdsb import (
    RetrieveAnswer,
    parse_retrieve_response,
    render_imaging_request,
    render_provide_request,
    render_retrieve_request,
)


@dataclass(frozen=True)
class Outgoing:
    """A document to provide: its media type, size and how to open its bytes."""

    mime_type: str
    size: int
    open: Callable[[], BinaryIO]

    @classmethod
    def of(cls, data: bytes, mime_type: str) -> Outgoing:
        return cls(mime_type, len(data), lambda: io.BytesIO(data))


def provide(client: HubClient, submission: SubmitObjectsRequest, documents: dict[str, Outgoing]) -> SoapAnswer:
    """ITI-41: each DocumentEntry id in `documents` sent as an MTOM part; answers the RegistryResponse."""
    content_ids = {entry_id: f"document{n}@xdshub-client" for n, entry_id in enumerate(documents)}
    parts = [OutgoingPart(content_ids[entry_id], doc.mime_type, doc.size, doc.open)
             for entry_id, doc in documents.items()]
    return client.mtom("/xds/repository", ACTION_PROVIDE, render_provide_request(submission, content_ids), parts,
                       scope="xds:register")


@dataclass
class Retrieved:
    """A retrieve answer: its status and error codes, and each document's bytes as a spooled file."""

    answer: SoapAnswer
    parsed: RetrieveAnswer | None
    files: dict[str, Attachment] = field(default_factory=dict)   # DocumentUniqueId -> attachment

    @property
    def status(self) -> str:
        return self.parsed.status if self.parsed else ""

    @property
    def error_codes(self) -> list[str]:
        return self.parsed.error_codes if self.parsed else []

    def read(self, unique_id: str) -> bytes:
        return self.files[unique_id].open().read()

    def close(self) -> None:
        self.answer.close()


def _retrieved(answer: SoapAnswer) -> Retrieved:
    if answer.status != 200 or not answer.body.tag.endswith("RetrieveDocumentSetResponse"):
        return Retrieved(answer, None)
    parsed = parse_retrieve_response(answer.body)
    files = {d.document_unique_id: answer.attachments[d.content_id]
             for d in parsed.documents if d.content_id is not None and d.content_id in answer.attachments}
    return Retrieved(answer, parsed, files)


def retrieve(client: HubClient, requests: Iterable[DocumentRequest]) -> Retrieved:
    """ITI-43 Retrieve Document Set."""
    return _retrieved(client.mtom("/xds/repository", ACTION_RETRIEVE, render_retrieve_request(requests),
                                  scope="xds:retrieve"))


def retrieve_imaging(client: HubClient, request: ImagingRequest) -> Retrieved:
    """RAD-69 Retrieve Imaging Document Set."""
    return _retrieved(client.mtom("/xds/imaging", ACTION_RETRIEVE_IMAGING, render_imaging_request(request),
                                  scope="xds:retrieve"))


def imaging_request(repository_unique_id: str, study_uid: str, series: Mapping[str, Sequence[str]],
                    transfer_syntaxes: Sequence[str] = ("1.2.840.10008.1.2.1",)) -> ImagingRequest:
    """A RAD-69 request for these instances: series UID -> SOP Instance UIDs."""
    from repository.model import SeriesRequest, StudyRequest

    return ImagingRequest(
        (StudyRequest(study_uid, tuple(SeriesRequest(series_uid, tuple(DocumentRequest(repository_unique_id, uid)
                                                                       for uid in uids))
                                       for series_uid, uids in series.items())),),
        tuple(transfer_syntaxes))
