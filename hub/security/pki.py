"""The hub's development PKI (RFC 5280 profile), made with `cryptography`.

`init_pki` creates, once, under the data dir (paths from the settings):

- ``ca.crt`` / ``ca.key``: a self-signed CA, EC P-256, ten years,
  basicConstraints CA:TRUE pathlen 0, keyUsage keyCertSign + cRLSign;
- ``server.crt`` / ``server.key``: the HTTPS server certificate for DNS
  ``localhost`` and IP ``127.0.0.1`` / ``::1`` (serverAuth), the file holding
  the leaf followed by the CA (the chain a TLS server sends);
- ``token-signing.key``: the EC P-256 key that signs access tokens (ES256, RFC 7518 3.4);
- ``trusted-ca.crt``: the bundle of CAs whose client certificates the server
  accepts, initially a copy of ``ca.crt``.

Existing files are never overwritten, so an operator's own CA, server
certificate or bundle survive; only a hub-issued server certificate close to
expiry is renewed. Private keys are written with mode 0600.

`issue_client_certificate` makes an organisation's TLS client certificate
(clientAuth, RFC 5280 4.2.1.12) and `thumbprint` computes the RFC 8705
``x5t#S256`` value that binds tokens and certificates to organisations.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.settings import Settings

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=397)          # CA/Browser Forum maximum for TLS server certificates
CLIENT_LIFETIME = timedelta(days=730)
RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(minutes=5)                # tolerate small clock differences between hosts
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1", "::1")


class PkiError(RuntimeError):
    """The PKI cannot do what was asked (e.g. no CA key to issue with)."""


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 key (secp256r1)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def thumbprint(cert_der: bytes) -> str:
    """base64url (unpadded) SHA-256 of the DER certificate: RFC 8705 3.1 ``x5t#S256``."""
    return base64.urlsafe_b64encode(hashlib.sha256(cert_der).digest()).rstrip(b"=").decode("ascii")


def certificate_thumbprint(cert: x509.Certificate) -> str:
    return thumbprint(cert.public_bytes(serialization.Encoding.DER))


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: expected an EC private key")
    return key


def load_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _validity(lifetime: timedelta) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - BACKDATE, now + lifetime


def _key_ids(builder: x509.CertificateBuilder, public: ec.EllipticCurvePublicKey,
             issuer: x509.Certificate | None) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    return builder


def make_ca(common_name: str = "xdshub development CA",
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (RFC 5280 4.2.1.9 basicConstraints, 4.2.1.3 keyUsage)."""
    key = new_private_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xdshub"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    not_before, not_after = _validity(CA_LIFETIME)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
    builder = _key_ids(builder, key.public_key(), None)
    return builder.sign(key, hashes.SHA256()), key


def _leaf(subject: x509.Name, public: ec.EllipticCurvePublicKey, ca_cert: x509.Certificate,
          ca_key: ec.EllipticCurvePrivateKey, lifetime: timedelta, usage: x509.ObjectIdentifier | tuple[
              x509.ObjectIdentifier, ...], san: x509.SubjectAlternativeName | None) -> x509.Certificate:
    not_before, not_after = _validity(lifetime)
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usage) if isinstance(usage, tuple) else [usage]), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    builder = _key_ids(builder, public, ca_cert)
    return builder.sign(ca_key, hashes.SHA256())


def make_server_certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                            dns_names: tuple[str, ...] = SERVER_DNS_NAMES,
                            ip_addresses: tuple[str, ...] = SERVER_IP_ADDRESSES,
                            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The hub's TLS certificate with the names in subjectAltName (RFC 6125 6.4).

    serverAuth for HTTPS, and clientAuth because the hub is also a TLS client
    with it: to ATNA syslog collectors, which verify client certificates
    (ITI TF-2 3.19, mutual node authentication).
    """
    key = new_private_key()
    san = x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in dns_names]
        + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses])
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xdshub"),
        x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "xdshub"),
    ])
    cert = _leaf(subject, key.public_key(), ca_cert, ca_key, SERVER_LIFETIME,
                 (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH), san)
    return cert, key


def _hub_ca(settings: Settings) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert_path, ca_key_path = settings.path(settings.ca_cert), settings.path(settings.ca_key)
    if not ca_key_path.exists():
        raise PkiError(f"no CA key at {ca_key_path}: this hub cannot issue certificates "
                       "(bring certificates issued by your own CA instead)")
    return x509.load_pem_x509_certificate(ca_cert_path.read_bytes()), load_private_key(ca_key_path)


def _server_needs_renewal(settings: Settings, ca_cert: x509.Certificate) -> bool:
    chain = load_certificates(settings.path(settings.server_cert))
    leaf = chain[0]
    issued_by_hub = leaf.issuer == ca_cert.subject
    try:
        usages = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = set()
    lacks_client_auth = ExtendedKeyUsageOID.CLIENT_AUTH not in usages   # made before the hub exported audit
    return issued_by_hub and (lacks_client_auth or leaf.not_valid_after_utc - datetime.now(UTC) < RENEW_BEFORE)


def init_pki(settings: Settings) -> None:
    """Create whatever part of the development PKI is missing (idempotent)."""
    ca_cert_path, ca_key_path = settings.path(settings.ca_cert), settings.path(settings.ca_key)
    server_cert_path, server_key_path = settings.path(settings.server_cert), settings.path(settings.server_key)
    if not ca_cert_path.exists():
        if ca_key_path.exists():
            raise PkiError(f"{ca_key_path} exists but {ca_cert_path} does not; restore the CA certificate")
        ca_cert, ca_key = make_ca()
        write_private(ca_key_path, private_key_pem(ca_key))
        write_public(ca_cert_path, certificate_pem(ca_cert))
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())

    server_missing = not server_cert_path.exists() or not server_key_path.exists()
    if ca_key_path.exists() and (server_missing or _server_needs_renewal(settings, ca_cert)):
        cert, key = make_server_certificate(ca_cert, load_private_key(ca_key_path))
        write_private(server_key_path, private_key_pem(key))
        write_public(server_cert_path, certificate_pem(cert) + certificate_pem(ca_cert))
    elif server_missing:
        raise PkiError(f"no server certificate at {server_cert_path} and no CA key to issue one")

    signing_key_path = settings.path(settings.signing_key)
    if not signing_key_path.exists():
        write_private(signing_key_path, private_key_pem(new_private_key()))

    trusted = settings.path(settings.ca_certs)
    if not trusted.exists():
        trusted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_cert_path, trusted)


def organisation_subject(name: str, organisation_oid: str) -> x509.Name:
    """CN and O carry the organisation's name, organizationIdentifier (X.520, 2.5.4.97) its OID."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organisation_oid),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])


def issue_client_certificate(settings: Settings, common_name: str,
                             organisation_oid: str) -> tuple[bytes, bytes]:
    """A TLS client certificate (clientAuth) for an organisation, signed by the hub CA.

    The organisation's OID is also in subjectAltName as ``urn:oid:...`` (RFC 3061).
    Returns (certificate PEM, private key PEM). Valid two years (capped at the CA's end).
    """
    ca_cert, ca_key = _hub_ca(settings)
    key = new_private_key()
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:oid:{organisation_oid}")])
    cert = _leaf(organisation_subject(common_name, organisation_oid), key.public_key(), ca_cert, ca_key,
                 CLIENT_LIFETIME, ExtendedKeyUsageOID.CLIENT_AUTH, san)
    return certificate_pem(cert), private_key_pem(key)
