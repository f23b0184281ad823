"""Organisations (providers) and what identifies them: certificates and OAuth2 clients."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    oid: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    certificates: Mapped[list[OrganisationCertificate]] = relationship(back_populates="organisation")
    clients: Mapped[list[OAuthClient]] = relationship(back_populates="organisation")


class OrganisationCertificate(Base):
    """A client certificate mapped to its organisation by SHA-256 thumbprint (RFC 8705 x5t#S256)."""

    __tablename__ = "organisation_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)  # base64url SHA-256 of DER
    subject: Mapped[str] = mapped_column(String(512))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pem: Mapped[str] = mapped_column(Text)

    organisation: Mapped[Organisation] = relationship(back_populates="certificates")


class OAuthClient(Base):
    """An OAuth2 client of an organisation (client credentials grant)."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(256))      # hashed, never stored in clear
    scopes: Mapped[str] = mapped_column(Text)                   # space separated
    # Public keys accepted for private_key_jwt (RFC 7523), as a JWKS JSON text.
    jwks: Mapped[str] = mapped_column(Text, default='{"keys": []}')
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    organisation: Mapped[Organisation] = relationship(back_populates="clients")


class DicomApplicationEntity(Base):
    """A calling AE title registered to an organisation: who may open a DIMSE association with the hub.

    The AE title is stored without its non-significant leading and trailing
    spaces (PS3.5 6.2, VR AE). `host`, when set, is the IP address or network
    (CIDR) the association must come from.
    """

    __tablename__ = "dicom_application_entities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    host: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    organisation: Mapped[Organisation] = relationship()
