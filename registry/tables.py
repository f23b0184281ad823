"""Registry storage: one row per registry object plus indexed query columns.

Every object keeps its full ebRIM content as JSON (`content`, rebuilt with
`registry.model.object_from_dict` to answer LeafClass queries); everything a
stored query filters on is a column or a row of a child table with an index,
so queries never scan or parse content blobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base


class RegistryObjectRow(Base):
    """A DocumentEntry, SubmissionSet, Folder or Association.

    Indexes are the few every stored query starts from: the patient (with kind
    and status), the uniqueId, and the two ends of associations. The other
    filters (times, codes, status) narrow one patient's rows and need none;
    every further index is paid for on each registration (bench/README.md).
    """

    __tablename__ = "registry_objects"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # entryUUID (urn:uuid:...)
    kind: Mapped[str] = mapped_column(String(16))        # registry.vocabulary.ObjectKind
    object_type: Mapped[str] = mapped_column(String(128))
    unique_id: Mapped[str | None] = mapped_column(String(128), index=True)  # uniqueId look-ups of any kind
    lid: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(256))
    home: Mapped[str | None] = mapped_column(String(128))
    # Which organisation submitted it, and whether only that organisation may see it.
    submitter_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    # DocumentEntry
    mime_type: Mapped[str | None] = mapped_column(String(128))
    creation_time: Mapped[str | None] = mapped_column(String(14))        # HL7 DTM, padded
    service_start_time: Mapped[str | None] = mapped_column(String(14))
    service_stop_time: Mapped[str | None] = mapped_column(String(14))
    hash: Mapped[str | None] = mapped_column(String(40))
    size: Mapped[int | None] = mapped_column(BigInteger)
    repository_unique_id: Mapped[str | None] = mapped_column(String(128))
    # SubmissionSet
    submission_time: Mapped[str | None] = mapped_column(String(14))
    source_id: Mapped[str | None] = mapped_column(String(128))
    # Folder
    last_update_time: Mapped[str | None] = mapped_column(String(14))
    # Association
    association_type: Mapped[str | None] = mapped_column(String(128))
    source_object: Mapped[str | None] = mapped_column(String(128), index=True)
    target_object: Mapped[str | None] = mapped_column(String(128), index=True)

    content: Mapped[dict] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    codes: Mapped[list[RegistryCodeRow]] = relationship(
        back_populates="object", cascade="all, delete-orphan", lazy="raise"
    )

    __table_args__ = (
        # A uniqueId is unique among objects of its kind (ITI TF-3 4.2.3.1.6); the
        # database enforces it, so two concurrent submissions cannot both win.
        UniqueConstraint("kind", "unique_id", name="uq_registry_objects_kind_unique_id"),
        Index("ix_registry_objects_patient_kind_status", "patient_id", "kind", "status"),
    )


class RegistryCodeRow(Base):
    """One coded value of an object, for matching stored query code parameters.

    `scheme` is the classificationScheme UUID (classCode, typeCode, eventCodeList,
    confidentialityCode, formatCode, ...), or one of the pseudo schemes
    `authorPerson` and `referenceId` for the other multi-valued query fields.
    """

    __tablename__ = "registry_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(ForeignKey("registry_objects.id", ondelete="CASCADE"), index=True)
    scheme: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text)
    coding_scheme: Mapped[str] = mapped_column(String(256), default="")

    object: Mapped[RegistryObjectRow] = relationship(back_populates="codes")

    __table_args__ = (Index("ix_registry_codes_scheme_code", "scheme", "code"),)


AUTHOR_PERSON = "authorPerson"
REFERENCE_ID = "referenceId"
