"""Code tables of XDS.b metadata (ITI TF-3 4.2 and 4.3; ebRS 3.0).

UUIDs and URNs are cited from ITI TF-3 Table 4.2.5-1 / 4.3.1; the values match
the ones IHE publishes in its examples (see ../shared/schemas/IHE-REFERENCE.md).
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """rs:RegistryError/@errorCode (ITI TF-3 Table 4.2.4.1-2)."""

    REGISTRY_ERROR = "XDSRegistryError"
    REGISTRY_METADATA_ERROR = "XDSRegistryMetadataError"
    REGISTRY_BUSY = "XDSRegistryBusy"
    REGISTRY_OUT_OF_RESOURCES = "XDSRegistryOutOfResources"
    DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
    DEPRECATED_DOCUMENT = "XDSRegistryDeprecatedDocumentError"
    DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"
    PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
    UNKNOWN_PATIENT_ID = "XDSUnknownPatientId"
    REPLACE_FAILED = "XDSReplaceFailed"
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
    STORED_QUERY_PARAM_NUMBER = "XDSStoredQueryParamNumber"
    STORED_QUERY_MISSING_PARAM = "XDSStoredQueryMissingParam"
    TOO_MANY_RESULTS = "XDSTooManyResults"
    RESULT_NOT_SINGLE_PATIENT = "XDSResultNotSinglePatient"
    REPOSITORY_ERROR = "XDSRepositoryError"
    REPOSITORY_METADATA_ERROR = "XDSRepositoryMetadataError"
    MISSING_DOCUMENT = "XDSMissingDocument"
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"
    UNKNOWN_REPOSITORY_ID = "XDSUnknownRepositoryId"
    UNKNOWN_COMMUNITY = "XDSUnknownCommunity"
    UNAVAILABLE_COMMUNITY = "XDSUnavailableCommunity"
    MISSING_HOME_COMMUNITY_ID = "XDSMissingHomeCommunityId"
    # ebRS 3.0 exception listed in ITI TF-3 Table 4.2.4.1-2 for ITI-41/42: an entryUUID
    # reference (e.g. an association end) that the recipient cannot resolve.
    UNRESOLVED_REFERENCE = "UnresolvedReferenceException"


class Severity(str, Enum):
    ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
    WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


class ResponseStatus(str, Enum):
    SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


class AvailabilityStatus(str, Enum):
    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    SUBMITTED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"


class ObjectKind(str, Enum):
    """What a stored registry object is (our column, not an ebRIM value)."""

    DOCUMENT_ENTRY = "DocumentEntry"
    SUBMISSION_SET = "SubmissionSet"
    FOLDER = "Folder"
    ASSOCIATION = "Association"


# ExtrinsicObject/@objectType (ITI TF-3 4.2.5.2)
STABLE_DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
ON_DEMAND_DOCUMENT_ENTRY = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
DOCUMENT_ENTRY_TYPES = (STABLE_DOCUMENT_ENTRY, ON_DEMAND_DOCUMENT_ENTRY)

# ebRIM object types of the other objects
REGISTRY_PACKAGE_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
ASSOCIATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
CLASSIFICATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_IDENTIFIER_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"


class DocumentEntryScheme(str, Enum):
    """Classification schemes and external identifiers of XDSDocumentEntry."""

    AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
    CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
    CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
    EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
    FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
    HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
    PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
    TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
    UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
    PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
    LIMITED_METADATA = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"


class SubmissionSetScheme(str, Enum):
    NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
    PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
    SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
    AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
    CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
    LIMITED_METADATA = "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"


class FolderScheme(str, Enum):
    NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
    UNIQUE_ID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"
    PATIENT_ID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
    CODE_LIST = "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"
    LIMITED_METADATA = "urn:uuid:2c144a76-29a9-4b7c-af54-b25409fe7d03"


class AssociationType(str, Enum):
    HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
    APND = "urn:ihe:iti:2007:AssociationType:APND"
    XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
    XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
    SIGNS = "urn:ihe:iti:2007:AssociationType:signs"


RELATIONSHIP_TYPES = (
    AssociationType.RPLC, AssociationType.APND, AssociationType.XFRM,
    AssociationType.XFRM_RPLC, AssociationType.SIGNS,
)
REPLACING_TYPES = (AssociationType.RPLC, AssociationType.XFRM_RPLC)

SUBMISSION_SET_STATUS_SLOT = "SubmissionSetStatus"


class StoredQueryId(str, Enum):
    """rim:AdhocQuery/@id of the XDS.b stored queries (ITI TF-2a 3.18.4.1.2.3.7)."""

    FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    FIND_SUBMISSION_SETS = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
    FIND_FOLDERS = "urn:uuid:958f3006-baad-4929-a4de-ff1114824431"
    GET_ALL = "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3"
    GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    GET_FOLDERS = "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4"
    GET_ASSOCIATIONS = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
    GET_DOCUMENTS_AND_ASSOCIATIONS = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
    GET_SUBMISSION_SETS = "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
    GET_SUBMISSION_SET_AND_CONTENTS = "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"
    GET_FOLDER_AND_CONTENTS = "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7"
    GET_FOLDERS_FOR_DOCUMENT = "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578"
    GET_RELATED_DOCUMENTS = "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6"
    FIND_DOCUMENTS_BY_REFERENCE_ID = "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492"


class ReturnType(str, Enum):
    OBJECT_REF = "ObjectRef"
    LEAF_CLASS = "LeafClass"


# Confidentiality codes (HL7 v3 Confidentiality, 2.16.840.1.113883.5.25) whose
# entries only the submitting organisation may see (issue 2, policy).
RESTRICTED_CONFIDENTIALITY_CODES = frozenset({"R", "V"})

# SOAP actions (ITI TF-2a/b, WSDLs in ../shared/schemas/wsdl)
ACTION_REGISTER = "urn:ihe:iti:2007:RegisterDocumentSet-b"
ACTION_REGISTER_RESPONSE = "urn:ihe:iti:2007:RegisterDocumentSet-bResponse"
ACTION_STORED_QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_STORED_QUERY_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"

# XML namespaces
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_XDSB = "urn:ihe:iti:xds-b:2007"
