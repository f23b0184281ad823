"""The failures of the DICOMweb service, one class per HTTP status (PS3.18 8.5 and each transaction's
status table). The view maps them to RFC 9457 problem documents; services only raise them.

    DicomwebError
    ├── BadRequest            400  malformed query parameter, frame list, bulk data path, multipart body
    ├── NotFound              404  no such study, series, instance or frame visible to the caller
    ├── NotAcceptable         406  no acceptable media type or transfer syntax can be given
    └── UnsupportedMediaType  415  a STOW-RS body other than multipart/related; type="application/dicom"
"""

from __future__ import annotations


class DicomwebError(Exception):
    status = 400
    title = "Bad Request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DicomwebError):
    pass


class NotFound(DicomwebError):
    status = 404
    title = "Not Found"


class NotAcceptable(DicomwebError):
    status = 406
    title = "Not Acceptable"


class UnsupportedMediaType(DicomwebError):
    status = 415
    title = "Unsupported Media Type"
