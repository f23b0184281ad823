"""The audit trail's storage: one row per audit message, chained by hash, with signed checkpoints.

Each record keeps the whole DICOM audit message (PS3.15 A.5) and, as indexed
columns, what the compliance queries filter on. `hash` covers the record's
content and the previous record's hash, so editing, deleting, inserting or
reordering records breaks the chain (`hub.audit.verify`). `audit_head` holds
the last sequence number and hash: appending locks that one row, so
concurrent transactions append one after the other, never fork the chain.
Every CHECKPOINT_EVERY records the head is signed with the hub's key
(`audit_checkpoints`), so a chain rewritten wholesale by someone without the
key is caught too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base

GENESIS_HASH = "0" * 64


class AuditRecord(Base):
    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event_id: Mapped[str] = mapped_column(String(16))          # DCM code, e.g. 110112 Query
    event_type: Mapped[str] = mapped_column(String(32))        # e.g. ITI-18
    action: Mapped[str] = mapped_column(String(1))
    outcome: Mapped[int] = mapped_column(Integer)
    organisation_oid: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[str] = mapped_column(String(256), default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[str] = mapped_column(String(256), default="")
    study_uid: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text)                 # the DICOM audit message, XML
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_records_patient_id", "patient_id"),
        Index("ix_audit_records_organisation_oid", "organisation_oid"),
        Index("ix_audit_records_study_uid", "study_uid"),
    )


class AuditHead(Base):
    """The one row appends lock: the chain's last sequence number and hash."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """The chain's hash at `seq`, signed (ECDSA P-256, SHA-256) with the hub's signing key."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)               # base64 DER
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditExportCursor(Base):
    """How far each syslog collector has been sent the chain (ITI-20): the last delivered seq."""

    __tablename__ = "audit_export_cursors"

    collector: Mapped[str] = mapped_column(String(256), primary_key=True)   # host:port
    last_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditArchive(Base):
    """Where the chain in the database begins after retention moved older records to an archive file.

    `seq` and `hash` are those of the last archived record: verification of
    what remains starts from them. The pair is signed like a checkpoint, so
    the starting point cannot be moved without the hub's key.
    """

    __tablename__ = "audit_archives"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(String(512))
    archived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditVerification(Base):
    """The outcome of one walk of the chain (`xdshub audit verify`, or the console), shown on the console."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_seq: Mapped[int] = mapped_column(Integer)        # the head when the walk began
    records: Mapped[int] = mapped_column(Integer)
    checkpoints: Mapped[int] = mapped_column(Integer)
    problem: Mapped[str] = mapped_column(Text, default="")  # empty when intact
