"""DIMSE: DICOM from modalities over the DICOM Upper Layer (PS3.7, PS3.8), with pynetdicom.

    entities   calling AE titles registered per organisation, and who may associate
    statuses   the C-STORE response statuses, one place from exceptions to the wire (PS3.4 B.2.3, PS3.7 C)
    receiver   one received instance into `repository.ingest.ingest`, in its own transaction; audit per study
    scp        the Storage and Verification SCP: association checks, C-ECHO, C-STORE, TLS
"""
