"""Code tables of the repository and imaging document source (ITI TF-2b 3.41, 3.43; RAD TF-3 4.68, 4.69)."""

from __future__ import annotations

ACTION_PROVIDE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_PROVIDE_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_RETRIEVE_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
# RAD-69 answers with the ITI-43 response action (RAD TF-3 4.69.4.2; rad69.wsdl)
ACTION_RETRIEVE_IMAGING = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
ACTION_RETRIEVE_IMAGING_RESPONSE = ACTION_RETRIEVE_RESPONSE

# XDS-I.b manifest: formatCode and mimeType of a KOS DocumentEntry (RAD TF-3 4.68.4.1.2.3.2)
KOS_FORMAT_CODE = "1.2.840.10008.5.1.4.1.1.88.59"
KOS_FORMAT_SCHEME = "1.2.840.10008.2.6.1"          # DICOM UID Registry
DICOM_MIME_TYPE = "application/dicom"

# referenceIdList (ITI TF-3 4.2.3.2.28) carrying the Study Instance UID (RAD TF-3 4.68.4.1.2.3.2)
REFERENCE_ID_LIST_SLOT = "urn:ihe:iti:xds:2013:referenceIdList"
STUDY_INSTANCE_UID_TYPE = "urn:ihe:iti:xds:2016:studyInstanceUID"
# eventCodeList carries the acquisition modalities from DICOM CID 29 (coding scheme DCM)
DCM_CODING_SCHEME = "1.2.840.10008.2.16.4"


def study_reference_id(study_instance_uid: str) -> str:
    """A CXi value naming a study: `UID^^^^urn:ihe:iti:xds:2016:studyInstanceUID`."""
    return f"{study_instance_uid}^^^^{STUDY_INSTANCE_UID_TYPE}"
