"""C-STORE response statuses of the hub's Storage SCP, and the one mapping from refusals to them.

PS3.4 B.2.3 (Table B.2-1, Storage Service Class statuses) and PS3.7 9.1.1.1.9
(the statuses a C-STORE response may carry) with the classes of PS3.7 Annex C:

    status   meaning (standard)                               the hub answers it when
    0000     Success                                          the instance is stored, or held already with the
                                                              same bytes (a resend changes nothing)
    A700     Refused: Out of Resources (A7xx, PS3.4 B.2.3)    the blob store or the database failed, or the
                                                              instance is larger than max_upload_bytes
    A900     Error: Data Set does not match SOP Class         an image SOP class without Pixel Data (a Type 1
             (A9xx, PS3.4 B.2.3)                              attribute of its IOD, PS3.3 C.7.6.3), or a data
                                                              set whose SOP Class or Instance UID is not the
                                                              one the request named (PS3.7 9.1.1.1.3-4)
    C000     Error: Cannot understand (Cxxx, PS3.4 B.2.3)     not a readable data set, or a required identifier
                                                              (UIDs, Patient ID) is missing or malformed
    C801     Error: Cannot understand, hub-assigned value     the study is held already for another patient
    C802     Error: Cannot understand, hub-assigned value     the SOP Instance UID is held already with other
                                                              content (nothing is overwritten)

PS3.7 C.5.8 "Duplicate SOP Instance" (0111H) would name the last case best,
but PS3.7 9.1.1.1.9 does not list it among the C-STORE statuses and PS3.7
Annex C forbids giving 01xx codes other meanings; the Cxxx values are the
service-class-specific ones an implementation may assign (PS3.7 Annex C).
pynetdicom answers values of its own (C0xx-C6xx: C211 when a handler raises),
so the hub's stay in C8xx, distinct from all of them. Every refusal carries
its reason in Error Comment (0000,0902, LO: at most 64 characters); a storage
or database failure says only that, its detail goes to the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pydicom.dataset import Dataset
from sqlalchemy.exc import SQLAlchemyError

from repository.blobstore import BlobStoreError, BlobTooLarge
from repository.dicomfile import InvalidDicom
from repository.ingest import InconsistentPatient, InstanceConflict, MissingPixelData

ERROR_COMMENT_MAX = 64      # Error Comment (0000,0902) is LO (PS3.7 Annex C, PS3.5 6.2)


class StoreStatus(IntEnum):
    """The C-STORE statuses the hub answers (see the module docstring for where each comes from)."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    PATIENT_CONFLICT = 0xC801
    INSTANCE_CONFLICT = 0xC802


class RequestMismatch(InvalidDicom):
    """The data set's SOP Class or Instance UID is not the one the C-STORE request named."""


@dataclass(frozen=True)
class Refusal:
    """A C-STORE refused: its status, the reason logged, and the Error Comment sent (the reason by default)."""

    status: StoreStatus
    reason: str
    comment: str | None = None

    def as_dataset(self) -> Dataset:
        """The status for pynetdicom: Status (0000,0900) and Error Comment (0000,0902)."""
        status = Dataset()
        status.Status = int(self.status)
        status.ErrorComment = _comment(self.reason if self.comment is None else self.comment)
        return status


def _comment(reason: str) -> str:
    text = "".join(c if " " <= c <= "~" and c != "\\" else " " for c in reason)
    return text if len(text) <= ERROR_COMMENT_MAX else text[:ERROR_COMMENT_MAX - 3] + "..."


# Most specific first: the first class an exception is an instance of decides its status.
_REFUSALS: tuple[tuple[type[BaseException], StoreStatus], ...] = (
    (InstanceConflict, StoreStatus.INSTANCE_CONFLICT),
    (InconsistentPatient, StoreStatus.PATIENT_CONFLICT),
    (MissingPixelData, StoreStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS),
    (RequestMismatch, StoreStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS),
    (InvalidDicom, StoreStatus.CANNOT_UNDERSTAND),
    (BlobTooLarge, StoreStatus.OUT_OF_RESOURCES),
)
# Failures of the hub, not of the instance: the comment does not show their detail.
_FAILURES: tuple[type[BaseException], ...] = (BlobStoreError, OSError, SQLAlchemyError)
UNAVAILABLE = "the hub cannot store instances now; send again later"


def refusal_for(exc: BaseException) -> Refusal | None:
    """The refusal an ingest failure answers, None for an exception that is not a known refusal."""
    for kind, status in _REFUSALS:
        if isinstance(exc, kind):
            return Refusal(status, str(exc) or type(exc).__name__)
    if isinstance(exc, _FAILURES):
        return Refusal(StoreStatus.OUT_OF_RESOURCES, f"{type(exc).__name__}: {exc}", UNAVAILABLE)
    return None
