"""Certificate identity: the TLS peer certificate and the organisation it stands for.

The WSGI server (`hub.server`) puts the DER bytes of the verified client
certificate into the request environ under `PEER_CERT_ENVIRON`, after removing
any value a client could have supplied. Organisations are found by the
certificate's SHA-256 thumbprint (RFC 8705 3.1 ``x5t#S256``).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

from flask import has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.security.pki import thumbprint
from hub.settings import Settings
from hub.tables import Organisation, OrganisationCertificate

PEER_CERT_ENVIRON = "xdshub.peer_cert_der"


def server_context(settings: Settings, client_certificates: ssl.VerifyMode) -> ssl.SSLContext:
    """A server's TLS context (TLS 1.2 at least): the hub's certificate chain, client certificates
    verified against `ca_certs` and asked for as `client_certificates` says (HTTPS: optional, DIMSE:
    required)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(settings.path(settings.ca_certs)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(settings.path(settings.server_cert)),
                            keyfile=str(settings.path(settings.server_key)))
    context.verify_mode = client_certificates
    return context


def peer_certificate_der() -> bytes | None:
    """The DER of the client certificate the TLS handshake verified, or None."""
    if not has_request_context():
        return None
    value = request.environ.get(PEER_CERT_ENVIRON)
    if isinstance(value, bytes | bytearray) and value:
        return bytes(value)
    return None


def certificate_record(session: Session, der: bytes) -> OrganisationCertificate | None:
    """The registration of this exact certificate, if it has not expired."""
    record = session.scalar(
        select(OrganisationCertificate).where(OrganisationCertificate.thumbprint == thumbprint(der)))
    if record is None or as_utc(record.not_after) <= datetime.now(UTC):
        return None
    return record


def organisation_for_certificate(session: Session, der: bytes) -> Organisation | None:
    """The organisation a (verified) client certificate is registered to, by thumbprint."""
    record = certificate_record(session, der)
    return record.organisation if record is not None else None
