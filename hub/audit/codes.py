"""Code tables of the hub's audit messages (DICOM PS3.15 A.5, PS3.16 Annex D, RFC 3881, IHE ITI TF-2).

A coded value renders as the attributes `csd-code`, `codeSystemName` and
`originalText` (PS3.15 A.5.1, the CodedValueType of the audit schema). The
DCM codes are defined in PS3.16 Annex D; the participant object ID types "2",
"9", "11" and "12" come from RFC 3881 5.5.4; the transaction codes are the event
type codes each IHE transaction's "Audit Record Considerations" prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class CodedValue:
    """One code: `code` in `system`, with its human-readable meaning (PS3.15 A.5.1 CodedValueType)."""

    code: str
    system: str
    display: str


DCM = "DCM"
RFC_3881 = "RFC-3881"
IHE_TRANSACTIONS = "IHE Transactions"
IHE_XDS_METADATA = "IHE XDS Metadata"

# -- EventID (PS3.16 CID 400 "Audit Event ID") -----------------------------------------------------------------
APPLICATION_ACTIVITY = CodedValue("110100", DCM, "Application Activity")
EXPORT = CodedValue("110106", DCM, "Export")
IMPORT = CodedValue("110107", DCM, "Import")
QUERY = CodedValue("110112", DCM, "Query")
SECURITY_ALERT = CodedValue("110113", DCM, "Security Alert")
USER_AUTHENTICATION = CodedValue("110114", DCM, "User Authentication")
AUDIT_LOG_USED = CodedValue("110101", DCM, "Audit Log Used")
# A patient's local id linked to its affinity domain id (the event ITI-8/ITI-44 Patient Identity Feed records).
PATIENT_RECORD = CodedValue("110110", DCM, "Patient Record")
# DICOM instances read or sent outside a document export (PS3.15 A.5.3 messages of those names): a viewer, DICOMweb.
INSTANCES_ACCESSED = CodedValue("110103", DCM, "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = CodedValue("110104", DCM, "DICOM Instances Transferred")
# Security Alert types (PS3.16 CID 403) of administrative changes
USER_SECURITY_ATTRIBUTES_CHANGED = CodedValue("110137", DCM, "User Security Attributes Changed")
SECURITY_ROLES_CHANGED = CodedValue("110136", DCM, "Security Roles Changed")
# A peer (another community) added or removed: whom the hub sends queries to and trusts answers from.
NETWORK_CONFIGURATION = CodedValue("110128", DCM, "Network Configuration")
# A share link made or withdrawn changes who may see a study.
OBJECT_SECURITY_ATTRIBUTES_CHANGED = CodedValue("110135", DCM, "Object Security Attributes Changed")

# -- EventTypeCode of User Authentication (PS3.15 A.5.3, "User Authentication": Login or Logout) --------------
LOGIN = CodedValue("110122", DCM, "Login")
LOGOUT = CodedValue("110123", DCM, "Logout")

# -- EventTypeCode of Security Alert (PS3.16 CID 403 "Security Alert Type") ------------------------------------
# Node Authentication: "a secure node authentication failure has occurred", e.g. during TLS negotiation.
NODE_AUTHENTICATION = CodedValue("110126", DCM, "Node Authentication")
# Use of Restricted Function: a caller attempted a function it has no access rights to.
USE_OF_RESTRICTED_FUNCTION = CodedValue("110132", DCM, "Use of Restricted Function")

# -- RoleIDCode of ActiveParticipant (PS3.16 CID 402 "Audit Active Participant Role ID") -----------------------
SOURCE_ROLE = CodedValue("110153", DCM, "Source Role ID")
DESTINATION_ROLE = CodedValue("110152", DCM, "Destination Role ID")

# -- ParticipantObjectIDTypeCode ---------------------------------------------------------------------------------
PATIENT_NUMBER = CodedValue("2", RFC_3881, "Patient Number")
REPORT_NUMBER = CodedValue("9", RFC_3881, "Report Number")
USER_IDENTIFIER = CodedValue("11", RFC_3881, "User Identifier")
URI = CodedValue("12", RFC_3881, "URI")
STUDY_INSTANCE_UID = CodedValue("110180", DCM, "Study Instance UID")          # PS3.16 CID 404
# ITI TF-2 3.41 and 3.42, audit record considerations: the submission set is identified by its classification node.
SUBMISSION_SET = CodedValue("urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd", IHE_XDS_METADATA,
                            "submission set classificationNode")

# -- AuditSourceTypeCode (PS3.15 A.5.1: 4 = "Application Server process or thread") -----------------------------
APPLICATION_SERVER = CodedValue("4", DCM, "Application Server process or thread")

# -- EventTypeCode of each IHE transaction the hub serves; also the ID type of the ITI-18 query object -----------
TRANSACTIONS: dict[str, CodedValue] = {
    code.code: code for code in (
        CodedValue("ITI-18", IHE_TRANSACTIONS, "Registry Stored Query"),
        CodedValue("ITI-41", IHE_TRANSACTIONS, "Provide and Register Document Set-b"),
        CodedValue("ITI-42", IHE_TRANSACTIONS, "Register Document Set-b"),
        CodedValue("ITI-43", IHE_TRANSACTIONS, "Retrieve Document Set"),
        CodedValue("RAD-68", IHE_TRANSACTIONS, "Provide and Register Imaging Document Set - MTOM/XOP"),
        CodedValue("RAD-69", IHE_TRANSACTIONS, "Retrieve Imaging Document Set"),
        # XCA / XCA-I responding gateway (ITI TF-2b 3.38.5, 3.39.5; RAD TF-3 4.75)
        CodedValue("ITI-38", IHE_TRANSACTIONS, "Cross Gateway Query"),
        CodedValue("ITI-39", IHE_TRANSACTIONS, "Cross Gateway Retrieve"),
        CodedValue("RAD-75", IHE_TRANSACTIONS, "Cross Gateway Retrieve Imaging Document Set"),
        # DICOMweb (PS3.18), IHE RAD TF-2: WADO-RS Retrieve, Store Instances over the Web, QIDO-RS Query
        CodedValue("RAD-107", IHE_TRANSACTIONS, "WADO-RS Retrieve"),
        CodedValue("RAD-108", IHE_TRANSACTIONS, "Store Instances over the Web"),
        CodedValue("RAD-129", IHE_TRANSACTIONS, "QIDO-RS Query"),
    )
}


def transaction(name: str) -> CodedValue:
    """The EventTypeCode of IHE transaction `name` ("ITI-18"); ValueError for one the hub does not serve."""
    try:
        return TRANSACTIONS[name]
    except KeyError:
        raise ValueError(f"no audit event type code for transaction {name!r}") from None


# -- ParticipantObjectDetail types (ITI TF-2 3.18 and 3.43 audit considerations; PS3.15 A.5.3 "Security Alert") ---
QUERY_ENCODING = "QueryEncoding"
REPOSITORY_UNIQUE_ID = "Repository Unique Id"
HOME_COMMUNITY_ID = "ihe:homeCommunityID"
ALERT_DESCRIPTION = "Alert Description"
IHE_TRANSACTION = "IHE Transaction"   # the transaction a refused call attempted (hub-defined detail type)
OAUTH_SCOPE = "scope"                 # RFC 6749 3.3: the scopes of a token request (hub-defined detail type)
USER_AGENT = "UserAgent"               # the browser that opened a share link (its User-Agent header)
DESCRIPTION = "Description"           # free text on an object (dicom2017c has no textual ParticipantObjectDescription)


class ObjectType(IntEnum):
    """ParticipantObjectTypeCode (RFC 3881 5.5.1)."""

    PERSON = 1
    SYSTEM_OBJECT = 2
    ORGANIZATION = 3
    OTHER = 4


class ObjectRole(IntEnum):
    """ParticipantObjectTypeCodeRole (RFC 3881 5.5.2), the roles the hub uses."""

    PATIENT = 1
    REPORT = 3
    SECURITY_USER_ENTITY = 11
    SECURITY_RESOURCE = 13
    JOB = 20
    QUERY = 24


class NetworkAccessPointType(IntEnum):
    """NetworkAccessPointTypeCode (RFC 3881 5.3.6)."""

    MACHINE_NAME = 1
    IP_ADDRESS = 2


# -- names for people: every event id and event type code the hub records, by code ------------------------------
EVENT_TYPE_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (code.code, f"{code.code} {code.display}") for code in (
        *TRANSACTIONS.values(), LOGIN, LOGOUT, NODE_AUTHENTICATION, USE_OF_RESTRICTED_FUNCTION,
        SECURITY_ROLES_CHANGED, USER_SECURITY_ATTRIBUTES_CHANGED, OBJECT_SECURITY_ATTRIBUTES_CHANGED,
        NETWORK_CONFIGURATION, AUDIT_LOG_USED, IMPORT, PATIENT_RECORD))
_NAMES = {value.code: value.display for value in list(globals().values())
          if isinstance(value, CodedValue) and value.system == DCM}
_NAMES.update({code: value.display for code, value in TRANSACTIONS.items()})


def display_name(code: str) -> str:
    """The meaning of an event id or event type code the hub records ("110106" -> "Export"), else the code."""
    return _NAMES.get(code, code)
