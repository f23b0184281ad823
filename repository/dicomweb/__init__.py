"""DICOMweb (PS3.18 Studies Service) under /dicomweb: STOW-RS, QIDO-RS and WADO-RS.

    module      what                                                    PS3.18          IHE
    errors      the HTTP failures of the service (one class per status)  8.5
    dicomjson   DICOM JSON (Annex F): elements, query results, metadata  F.2
    codec       Accept and Content-Type, multipart/related answers       8.7, 8.6.1.2
    stow        Store Instances                                          10.5, Annex I   RAD-108
    qido        Search (studies, series, instances)                      10.6, 8.3.4     RAD-129
    wado        Retrieve: instances, metadata, frames, bulk data         10.4            RAD-107
    render      Retrieve rendered: JPEG and PNG of a frame               8.3.5, 9.5      RAD-107
    views       the Flask blueprint: authenticate, call one service, audit, answer

The services (stow, qido, wado, render) take a database session, the blob
store and the caller; they never see Flask. Every answer is limited to the
instances the caller may see (`repository.visibility`); a study, series or
instance the caller may not see is answered 404 exactly like a missing one.
"""
