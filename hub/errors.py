"""Exceptions that carry an IHE error code.

Every failure the hub reports on the wire is one of these. Domain code raises
them; exactly one place (`hub.soap.faults` for SOAP, `hub.problems` for JSON
APIs) turns them into a response.

    XdsError                      (ITI TF-3 Table 4.2.4.1-2)
    ├── RegistryError             XDSRegistryError
    ├── RegistryMetadataError     XDSRegistryMetadataError
    ├── DuplicateUniqueIdInMessage XDSRegistryDuplicateUniqueIdInMessage
    ├── DuplicateUniqueIdInRegistry XDSDuplicateUniqueIdInRegistry
    ├── DeprecatedDocumentError   XDSRegistryDeprecatedDocumentError
    ├── PatientIdDoesNotMatch     XDSPatientIdDoesNotMatch
    ├── UnknownPatientId          XDSUnknownPatientId
    ├── ReplaceFailed             XDSReplaceFailed
    ├── UnknownStoredQuery        XDSUnknownStoredQuery
    ├── StoredQueryParamNumber    XDSStoredQueryParamNumber
    ├── StoredQueryMissingParam   XDSStoredQueryMissingParam
    ├── TooManyResults            XDSTooManyResults
    ├── ResultNotSinglePatient    XDSResultNotSinglePatient
    ├── RegistryOutOfResources    XDSRegistryOutOfResources
    ├── NonIdenticalHash          XDSNonIdenticalHash
    ├── NonIdenticalSize          XDSNonIdenticalSize
    ├── UnresolvedReference       UnresolvedReferenceException
    ├── RepositoryError           XDSRepositoryError
    ├── RepositoryMetadataError   XDSRepositoryMetadataError
    ├── MissingDocument           XDSMissingDocument
    ├── MissingDocumentMetadata   XDSMissingDocumentMetadata
    ├── UnknownRepositoryId       XDSUnknownRepositoryId
    ├── UnknownCommunity          XDSUnknownCommunity
    └── MissingHomeCommunityId    XDSMissingHomeCommunityId

    SoapFault                     SOAP 1.2 env:Fault (PS: W3C SOAP 1.2 part 1, 5.4)
    ├── SenderFault               env:Sender (malformed, hostile, unknown action)
    ├── VersionMismatchFault      env:VersionMismatch (not SOAP 1.2)
    ├── MustUnderstandFault       env:MustUnderstand
    ├── AuthenticationFault       HTTP 401 + env:Sender (no or bad token)
    └── AuthorizationFault        HTTP 403 + env:Sender (scope, binding, policy)

Errors of the first family become an `rs:RegistryResponse` with status
Failure (or PartialSuccess); the second family become SOAP faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.vocabulary import ErrorCode, Severity


@dataclass
class XdsError(Exception):
    """A registry error with its IHE code, reported in a RegistryErrorList."""

    message: str
    location: str = ""
    code: ErrorCode = field(default=ErrorCode.REGISTRY_ERROR)
    severity: Severity = field(default=Severity.ERROR)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


def _xds(name: str, code: ErrorCode, doc: str) -> type[XdsError]:
    """Define a subclass of XdsError fixed to one code."""

    def __init__(self: XdsError, message: str, location: str = "") -> None:
        XdsError.__init__(self, message, location, code)

    return type(name, (XdsError,), {"__init__": __init__, "__doc__": doc, "CODE": code})


RegistryError = _xds("RegistryError", ErrorCode.REGISTRY_ERROR, "Internal or unclassified registry error.")
RegistryMetadataError = _xds("RegistryMetadataError", ErrorCode.REGISTRY_METADATA_ERROR,
                             "Submitted or queried metadata breaks an XDS rule.")
DuplicateUniqueIdInMessage = _xds("DuplicateUniqueIdInMessage", ErrorCode.DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                                  "The same uniqueId twice in one submission.")
DuplicateUniqueIdInRegistry = _xds("DuplicateUniqueIdInRegistry", ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                                   "A uniqueId (or entryUUID) that the registry already holds.")
DeprecatedDocumentError = _xds("DeprecatedDocumentError", ErrorCode.DEPRECATED_DOCUMENT,
                               "An association targets a deprecated entry.")
PatientIdDoesNotMatch = _xds("PatientIdDoesNotMatch", ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                             "Objects of one submission name different patients.")
UnknownPatientId = _xds("UnknownPatientId", ErrorCode.UNKNOWN_PATIENT_ID, "Patient id unknown to the affinity domain.")
ReplaceFailed = _xds("ReplaceFailed", ErrorCode.REPLACE_FAILED, "The entry to replace is missing or not approved.")
UnknownStoredQuery = _xds("UnknownStoredQuery", ErrorCode.UNKNOWN_STORED_QUERY, "Stored query id not supported.")
StoredQueryParamNumber = _xds("StoredQueryParamNumber", ErrorCode.STORED_QUERY_PARAM_NUMBER,
                              "A parameter given too often, or several values where one is allowed.")
StoredQueryMissingParam = _xds("StoredQueryMissingParam", ErrorCode.STORED_QUERY_MISSING_PARAM,
                               "A required stored query parameter is missing.")
TooManyResults = _xds("TooManyResults", ErrorCode.TOO_MANY_RESULTS, "The query matches more than the limit.")
ResultNotSinglePatient = _xds("ResultNotSinglePatient", ErrorCode.RESULT_NOT_SINGLE_PATIENT,
                              "Results would span more than one patient.")
RegistryOutOfResources = _xds("RegistryOutOfResources", ErrorCode.REGISTRY_OUT_OF_RESOURCES,
                              "The request is larger than the registry accepts.")
NonIdenticalHash = _xds("NonIdenticalHash", ErrorCode.NON_IDENTICAL_HASH,
                        "A DocumentEntry uniqueId the registry holds, submitted with another hash.")
NonIdenticalSize = _xds("NonIdenticalSize", ErrorCode.NON_IDENTICAL_SIZE,
                        "A DocumentEntry uniqueId the registry holds, submitted with another size.")
UnresolvedReference = _xds("UnresolvedReference", ErrorCode.UNRESOLVED_REFERENCE,
                           "An entryUUID reference that is neither in the submission nor in the registry.")
RepositoryError = _xds("RepositoryError", ErrorCode.REPOSITORY_ERROR,
                       "The repository could not store or answer a document (storage, registry call, transcoding).")
RepositoryMetadataError = _xds("RepositoryMetadataError", ErrorCode.REPOSITORY_METADATA_ERROR,
                               "Metadata or content the repository must check is wrong (e.g. a KOS that is no KOS).")
MissingDocument = _xds("MissingDocument", ErrorCode.MISSING_DOCUMENT,
                       "A DocumentEntry without its document, or a retrieve of a document this repository lacks.")
MissingDocumentMetadata = _xds("MissingDocumentMetadata", ErrorCode.MISSING_DOCUMENT_METADATA,
                               "A document (MIME part) that no DocumentEntry of the submission describes.")
UnknownRepositoryId = _xds("UnknownRepositoryId", ErrorCode.UNKNOWN_REPOSITORY_ID,
                           "A retrieve naming a repositoryUniqueId that is not this repository.")
UnknownCommunity = _xds("UnknownCommunity", ErrorCode.UNKNOWN_COMMUNITY,
                        "A query or retrieve naming a homeCommunityId this gateway does not answer for.")
MissingHomeCommunityId = _xds("MissingHomeCommunityId", ErrorCode.MISSING_HOME_COMMUNITY_ID,
                              "A cross-community request without the homeCommunityId it requires.")


@dataclass
class SoapFault(Exception):
    """A SOAP 1.2 fault. `subcode` is an optional qualified name text."""

    reason: str
    code: str = "Sender"
    subcode: str | None = None
    http_status: int = 400

    def __post_init__(self) -> None:
        Exception.__init__(self, self.reason)


class SenderFault(SoapFault):
    """The request is not acceptable as sent (malformed, hostile, unknown action)."""

    def __init__(self, reason: str, subcode: str | None = None, http_status: int = 400) -> None:
        super().__init__(reason, "Sender", subcode, http_status)


class VersionMismatchFault(SoapFault):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, "VersionMismatch", None, 400)


class MustUnderstandFault(SoapFault):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, "MustUnderstand", None, 400)


class AuthenticationFault(SoapFault):
    """No client certificate, no token, or a token that is expired or not ours: HTTP 401."""

    def __init__(self, reason: str, error: str = "invalid_token") -> None:
        super().__init__(reason, "Sender", None, 401)
        self.error = error


class AuthorizationFault(SoapFault):
    """Authenticated, but not allowed: wrong scope, token bound to another certificate. HTTP 403."""

    def __init__(self, reason: str, error: str = "insufficient_scope") -> None:
        super().__init__(reason, "Sender", None, 403)
        self.error = error


class PayloadTooLarge(SenderFault):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes", http_status=413)


class XdsErrorList(Exception):
    """Several registry errors found together (e.g. by metadata validation)."""

    def __init__(self, errors: list[XdsError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
