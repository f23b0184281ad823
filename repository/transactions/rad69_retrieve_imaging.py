"""RAD-69 Retrieve Imaging Document Set, Imaging Document Source side (RAD TF-3 4.69.4.1.3).

The consumer names instances by study, series and SOP Instance UID (the
DocumentUniqueId) and the transfer syntaxes it accepts. Each instance is
answered on its own:

- a RepositoryUniqueId other than this source's: XDSUnknownRepositoryId;
- an instance this hub does not hold under that study and series, or that the
  caller may not see: XDSMissingDocument (naming the retrieve location a
  recorded manifest gives for it, when another source holds it);
- held in an accepted transfer syntax: the stored bytes, streamed;
- held otherwise: transcoded when pydicom can (`repository.transcode`) into a
  temporary file, else XDSRepositoryError saying which syntaxes are possible.
  RAD TF-3 names no dedicated code for an unsupported transfer syntax.

Who may see an instance: the organisation that stored it, and anyone who may
see a manifest referencing it (`repository.visibility`, the rule QIDO-RS and
WADO-RS apply too).

Instances whose RepositoryUniqueId hub.toml maps to another imaging document
source of the affinity domain are forwarded there, in the same studies and
series (`repository.forwarding`); its answers join the local ones.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import MissingDocument, RepositoryError, UnknownRepositoryId, XdsError
from hub.security.identity import Caller
from hub.settings import Settings
from repository.blobstore import BlobStore, open_seekable
from repository.forwarding import Forwarder, merge_results
from repository.model import DocumentRequest, ImagingRequest, RetrievedDocument, RetrieveResult
from repository.tables import DicomInstance, ManifestReference
from repository.transcode import TranscodeUnavailable, choose_transfer_syntax, transcode
from repository.visibility import VisibleInstances

DICOM = "application/dicom"


def _missing(session: Session, uid: str, settings: Settings) -> XdsError:
    elsewhere = session.scalar(select(ManifestReference.retrieve_location_uid).where(
        ManifestReference.sop_instance_uid == uid,
        ManifestReference.retrieve_location_uid != settings.repository_unique_id).limit(1))
    if elsewhere:
        return MissingDocument(f"instance {uid} is not held here; its manifest names retrieve location {elsewhere}",
                               uid)
    return MissingDocument(f"instance {uid} is not held by this imaging document source", uid)


def _transcoded(store: BlobStore, instance: DicomInstance, target: str, spool_dir: Path) -> tuple[int, BinaryIO]:
    spool_dir.mkdir(parents=True, exist_ok=True)
    sink = tempfile.TemporaryFile(dir=spool_dir, prefix="transcode-")
    try:
        with open_seekable(store, instance.sha256) as source:
            transcode(source, sink, target)
        size = sink.tell()
        sink.seek(0)
        return size, sink
    except BaseException:
        sink.close()
        raise


class RetrieveImaging:
    def __init__(self, session: Session, store: BlobStore, caller: Caller, settings: Settings) -> None:
        self.session = session
        self.store = store
        self.caller = caller
        self.settings = settings
        self.spool_dir = settings.data_dir / "spool"
        self.visible: VisibleInstances | None = None   # the requested instances the caller may see (set by run)

    def run(self, request: ImagingRequest) -> RetrieveResult:
        result = RetrieveResult()
        uids = sorted({d.document_unique_id for d in request.documents})
        self.visible = VisibleInstances(self.session, self.caller, uids)
        try:
            for study in request.studies:
                for series in study.series:
                    for document in series.documents:
                        self._one(result, study.study_instance_uid, series.series_instance_uid, document,
                                  request.transfer_syntaxes)
        except BaseException:
            result.release()
            raise
        return result

    def _one(self, result: RetrieveResult, study_uid: str, series_uid: str, document: DocumentRequest,
             syntaxes: tuple[str, ...]) -> None:
        uid = document.document_unique_id
        if document.repository_unique_id != self.settings.repository_unique_id:
            result.errors.append(UnknownRepositoryId(
                f"RepositoryUniqueId {document.repository_unique_id} is not this imaging document source "
                f"({self.settings.repository_unique_id})", uid))
            return
        instance = self.visible.get(uid) if self.visible is not None else None
        if instance is None or instance.study_instance_uid != study_uid or instance.series_instance_uid != series_uid:
            result.errors.append(_missing(self.session, uid, self.settings))
            return
        target = choose_transfer_syntax(instance.transfer_syntax_uid, syntaxes)
        if target is None:
            result.errors.append(RepositoryError(
                f"instance {uid} is stored as {instance.transfer_syntax_uid} and cannot be given in any of "
                f"{', '.join(syntaxes)}", uid))
            return
        home = self.settings.home_community_id if document.home_community_id else None
        if target == instance.transfer_syntax_uid:
            result.documents.append(RetrievedDocument(
                self.settings.repository_unique_id, uid, DICOM, instance.size,
                partial(self.store.open, instance.sha256), home, None, *_described(instance)))
            return
        try:
            size, stream = _transcoded(self.store, instance, target, self.spool_dir)
        except TranscodeUnavailable as exc:
            result.errors.append(RepositoryError(f"instance {uid} cannot be transcoded to {target}: {exc}", uid))
            return
        # The temporary file is handed out once and closed (so removed) by whoever streams it.
        result.documents.append(RetrievedDocument(
            self.settings.repository_unique_id, uid, DICOM, size, partial(_rewound, stream), home, stream.close,
            *_described(instance)))


def _described(instance: DicomInstance) -> tuple[str, str, str]:
    return instance.study_instance_uid, instance.sop_class_uid, instance.patient_id


def _rewound(stream: BinaryIO) -> BinaryIO:
    stream.seek(0)
    return stream


def retrieve_imaging(session: Session, store: BlobStore, request: ImagingRequest, caller: Caller,
                     settings: Settings, forwarder: Forwarder | None = None) -> RetrieveResult:
    """Answer each instance: here, from the source `forwarder` maps its RepositoryUniqueId to, else an error."""
    if forwarder is None:
        return RetrieveImaging(session, store, caller, settings).run(request)
    here, elsewhere = forwarder.split_imaging(request)
    # Forwarded first, so that no database transaction is held open while the far hub answers.
    forwarded = forwarder.retrieve_imaging(elsewhere) if elsewhere is not None else RetrieveResult()
    try:
        result = RetrieveImaging(session, store, caller, settings).run(here) if here is not None \
            else RetrieveResult()
    except BaseException:
        forwarded.release()
        raise
    return merge_results(request.documents, result, forwarded)
