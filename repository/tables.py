"""Repository storage: which blob holds each document and DICOM instance, and what manifests reference.

The bytes live in the blob store (`repository.blobstore`), addressed by
SHA-256; these rows are what makes a blob part of the repository. A blob no
row references is garbage (`repository.reclaim`), so a submission that fails
before its rows commit leaves nothing a consumer can reach.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base


class StoredDocument(Base):
    """A document of the XDS Document Repository (ITI-41 stored it, ITI-43 answers it).

    `restricted` and `submitter_org_id` carry the registry's confidentiality
    rule to the repository, so retrieve applies it even when the registry is
    another hub.
    """

    __tablename__ = "repository_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unique_id: Mapped[str] = mapped_column(String(128), unique=True)   # XDSDocumentEntry.uniqueId
    sha256: Mapped[str] = mapped_column(String(64), index=True)        # blob address
    sha1: Mapped[str] = mapped_column(String(40))                      # XDSDocumentEntry.hash
    size: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[str] = mapped_column(String(256), default="", server_default="")  # for audit records
    submitter_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DicomInstance(Base):
    """A DICOM instance the hub holds as Imaging Document Source (RAD-69 answers it).

    The patient and study attributes are copied from the header so that a
    manifest (KOS) for the study can be built without reading any blob.
    """

    __tablename__ = "dicom_instances"

    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    patient_id: Mapped[str] = mapped_column(String(256), default="")         # XDS form ID^^^&OID&ISO
    dicom_patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)      # a QIDO-RS matching key
    issuer_of_patient_id: Mapped[str] = mapped_column(String(128), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)      # a QIDO-RS matching key
    study_time: Mapped[str] = mapped_column(String(32), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)      # a QIDO-RS matching key
    study_id: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str] = mapped_column(String(256), default="")
    body_part_examined: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer)
    institution_name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    department: Mapped[str] = mapped_column(String(64), default="", server_default="")
    station_name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="", server_default="")
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    bits_allocated: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    submitter_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ManifestReference(Base):
    """One instance an imaging manifest (KOS) references, and where it can be retrieved (RAD TF-3 4.68.4.1.3)."""

    __tablename__ = "manifest_references"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    manifest_unique_id: Mapped[str] = mapped_column(
        ForeignKey("repository_documents.unique_id", ondelete="CASCADE"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    retrieve_location_uid: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_manifest_references_sop_instance_uid", "sop_instance_uid"),)


class StudyState(Base):
    """Where a study the hub holds stands with publishing: when its last new instance arrived, and the
    manifest (KOS) registered for it, if any.

    The quiet-period publisher (`repository.autopublish`) publishes a study
    whose last instance is older than the quiet period and newer than its
    manifest; the next manifest replaces the previous one (RPLC). Kept in the
    database, so a restart forgets nothing and publishes nothing twice.
    """

    __tablename__ = "study_states"

    study_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(256))                    # XDS form, the study's one patient
    last_instance_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    manifest_unique_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    manifest_entry_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)   # what RPLC targets
    # The last_instance_at the registered manifest covers: due again when a newer instance arrives.
    published_through: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    published_instances: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)               # consecutive failed publications
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
