"""Plain objects of the repository transactions, free of any XML (the codec is `repository.xdsb`).

ITI-41 / RAD-68 (ITI TF-2b 3.41.4.1.2): a SubmitObjectsRequest plus one
document per DocumentEntry, each either an MTOM attachment (xop:Include
pointing to a MIME part by Content-ID) or, for small documents, inline base64.
ITI-43 (ITI TF-2b 3.43.4.1.2) and RAD-69 (RAD TF-3 4.69.4.1.2): document
requests, the imaging ones grouped by study and series with the transfer
syntaxes the consumer accepts.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from hub.errors import XdsError
from registry.model import SubmitObjectsRequest
from registry.vocabulary import ResponseStatus


class Content(Protocol):
    """Bytes that can be read (again) as a stream: an MTOM attachment, a blob, a temporary file."""

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class BytesContent:
    """Content held in memory: an inline base64 document, a manifest the hub built."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class DocumentContent:
    """An xdsb:Document of a Provide and Register request: its DocumentEntry id and where its bytes are."""

    id: str
    content_id: str | None = None      # MTOM: the MIME part the xop:Include names
    inline: bytes | None = None        # inline base64, decoded


@dataclass
class ProvideRequest:
    submission: SubmitObjectsRequest
    documents: list[DocumentContent]


@dataclass(frozen=True)
class DocumentRequest:
    """xdsb:DocumentRequest (ITI TF-2b 3.43.4.1.2); in RAD-69 the uniqueId is a SOP Instance UID."""

    repository_unique_id: str
    document_unique_id: str
    home_community_id: str | None = None


@dataclass(frozen=True)
class SeriesRequest:
    series_instance_uid: str
    documents: tuple[DocumentRequest, ...]


@dataclass(frozen=True)
class StudyRequest:
    study_instance_uid: str
    series: tuple[SeriesRequest, ...]


@dataclass(frozen=True)
class ImagingRequest:
    """xdsi:RetrieveImagingDocumentSetRequest (RAD TF-3 4.69.4.1.2)."""

    studies: tuple[StudyRequest, ...]
    transfer_syntaxes: tuple[str, ...]

    @property
    def documents(self) -> list[DocumentRequest]:
        """Every instance asked for, study by study and series by series."""
        return [d for study in self.studies for series in study.series for d in series.documents]


@dataclass(frozen=True)
class RetrievedDocument:
    """A document found for a request: what the response names, and its bytes, opened lazily."""

    repository_unique_id: str
    document_unique_id: str
    mime_type: str
    size: int
    open: Callable[[], BinaryIO]
    home_community_id: str | None = None
    release: Callable[[], None] | None = None   # frees a temporary copy (a transcoded instance) not streamed
    study_instance_uid: str | None = None       # RAD-69: what the audit record names
    sop_class_uid: str | None = None
    patient_id: str | None = None


@dataclass
class RetrieveResult:
    """The documents found and one error per document that was not (ITI TF-2b 3.43.4.2.3)."""

    documents: list[RetrievedDocument] = field(default_factory=list)
    errors: list[XdsError] = field(default_factory=list)

    @property
    def status(self) -> ResponseStatus:
        if not self.errors:
            return ResponseStatus.SUCCESS
        return ResponseStatus.PARTIAL_SUCCESS if self.documents else ResponseStatus.FAILURE

    def release(self) -> None:
        """Free the temporary copies of documents that will not be streamed (an error after the lookup)."""
        for document in self.documents:
            if document.release is not None:
                document.release()
