"""Provider organisations: registration and the client bundle they receive.

`add_organisation` stores an organisation with its client certificate (issued
by the hub CA, or an externally issued one registered by thumbprint, RFC 8705
3.1) and one OAuth2 client (RFC 6749 2.3): a random client id, a secret kept
only as a salted scrypt hash (RFC 7914), and the certificate's public key as a
JWK Set (RFC 7517) so the client can also authenticate with private_key_jwt
(RFC 7523 2.2) signed by ``client.key``. The caller owns the transaction.

`write_bundle` writes what `xdshub org add` hands to the provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.security.pki import certificate_thumbprint, issue_client_certificate, load_certificates, write_private
from hub.settings import Settings
from hub.tables import OAuthClient, Organisation, OrganisationCertificate

DEFAULT_SCOPES = "xds:query xds:register xds:retrieve dicomweb:read dicomweb:write share:create"
OPTIONAL_SCOPES = "audit:read"
KNOWN_SCOPES = frozenset(DEFAULT_SCOPES.split()) | frozenset(OPTIONAL_SCOPES.split())

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class OrganisationError(ValueError):
    """An organisation cannot be registered as asked."""


class DuplicateOrganisation(OrganisationError):
    """The name, OID or certificate is already registered."""


class InvalidCertificate(OrganisationError):
    """An external client certificate that cannot be registered."""


@dataclass(frozen=True)
class NewOrganisation:
    organisation_id: int
    name: str
    oid: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes | None          # None when an externally issued certificate was registered


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (RFC 7914), salt and hash base64url."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a client secret against its stored hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def public_jwks(cert: x509.Certificate) -> str:
    """The certificate's public key as a JWK Set (RFC 7517 5) with an RFC 7638 kid."""
    public = cert.public_key()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    key: ECKey | RSAKey
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = ECKey.import_key(pem)
    elif isinstance(public, rsa.RSAPublicKey):
        key = RSAKey.import_key(pem)
    else:
        raise InvalidCertificate("the certificate's key is neither EC nor RSA")
    data = key.as_dict(private=False)
    data["kid"] = key.thumbprint()
    data["use"] = "sig"
    return json.dumps(KeySet.import_key_set({"keys": [data]}).as_dict(private=False))


def parse_scopes(scopes: list[str] | str | None) -> tuple[str, ...]:
    """Scopes as given (space separated or a list), checked against the known ones."""
    if scopes is None:
        return tuple(DEFAULT_SCOPES.split())
    items = scopes.split() if isinstance(scopes, str) else [s for part in scopes for s in part.split()]
    unknown = sorted(set(items) - KNOWN_SCOPES)
    if unknown:
        raise OrganisationError(f"unknown scope(s) {', '.join(unknown)}; known: {' '.join(sorted(KNOWN_SCOPES))}")
    if not items:
        raise OrganisationError("at least one scope is needed")
    return tuple(dict.fromkeys(items))


def _external_certificate(settings: Settings, pem: bytes) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise InvalidCertificate("not a PEM X.509 certificate") from exc
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise InvalidCertificate(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    trusted_path = settings.path(settings.ca_certs)
    trusted = load_certificates(trusted_path) if trusted_path.exists() else []
    for ca in trusted:
        try:
            cert.verify_directly_issued_by(ca)
            return cert
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise InvalidCertificate(f"the certificate is not issued by a CA in {trusted_path}; "
                             "add its issuing CA to that bundle first")


def add_organisation(session: Session, settings: Settings, name: str, oid: str,
                     scopes: list[str] | str | None = None,
                     certificate_pem: bytes | None = None) -> NewOrganisation:
    """Register an organisation, its client certificate and its OAuth2 client (caller commits)."""
    name, oid = name.strip(), oid.strip()
    if not name:
        raise OrganisationError("the organisation needs a name")
    if not oid or not all(part.isdigit() for part in oid.split(".")):
        raise OrganisationError(f"{oid!r} is not an OID (digits separated by dots)")
    granted = parse_scopes(scopes)
    if session.scalar(select(Organisation).where(Organisation.name == name)) is not None:
        raise DuplicateOrganisation(f"an organisation named {name!r} is already registered")
    if session.scalar(select(Organisation).where(Organisation.oid == oid)) is not None:
        raise DuplicateOrganisation(f"an organisation with OID {oid} is already registered")

    key_pem: bytes | None
    if certificate_pem is None:
        cert_pem, key_pem = issue_client_certificate(settings, name, oid)
        cert = x509.load_pem_x509_certificate(cert_pem)
    else:
        cert = _external_certificate(settings, certificate_pem)
        cert_pem, key_pem = cert.public_bytes(Encoding.PEM), None
    thumb = certificate_thumbprint(cert)
    if session.scalar(select(OrganisationCertificate).where(OrganisationCertificate.thumbprint == thumb)):
        raise DuplicateOrganisation("this certificate is already registered to an organisation")

    now = datetime.now(UTC)
    organisation = Organisation(name=name, oid=oid, created_at=now)
    session.add(organisation)
    session.flush()
    session.add(OrganisationCertificate(
        organisation_id=organisation.id, thumbprint=thumb, subject=cert.subject.rfc4514_string()[:512],
        not_after=cert.not_valid_after_utc, pem=cert_pem.decode("ascii")))
    client_id = secrets.token_urlsafe(18)
    client_secret = secrets.token_urlsafe(32)
    session.add(OAuthClient(
        client_id=client_id, organisation_id=organisation.id, secret_hash=hash_secret(client_secret),
        scopes=" ".join(granted), jwks=public_jwks(cert), created_at=now))
    session.flush()
    return NewOrganisation(organisation.id, name, oid, client_id, client_secret, granted, cert_pem, key_pem)


def server_trust_anchor(settings: Settings) -> bytes:
    """What a client needs to verify this hub's server certificate: the hub CA, plus the
    root of the server chain when an operator's server certificate comes from elsewhere."""
    anchor = settings.path(settings.ca_cert).read_bytes()
    server_chain = settings.path(settings.server_cert)
    if server_chain.exists():
        chain = load_certificates(server_chain)
        known = {c.fingerprint(SHA256()) for c in x509.load_pem_x509_certificates(anchor)}
        last = chain[-1]
        if len(chain) > 1 and last.issuer == last.subject and last.fingerprint(SHA256()) not in known:
            anchor += last.public_bytes(Encoding.PEM)
    return anchor


BUNDLE_FILES = ("client.crt", "client.key", "ca.crt", "client.json")   # what write_bundle writes


def write_bundle(folder: Path | str, settings: Settings, new: NewOrganisation) -> Path:
    """Write client.crt, client.key (0600), ca.crt and client.json into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "client.crt").write_bytes(new.cert_pem)
    if new.key_pem is not None:
        write_private(folder / "client.key", new.key_pem)
    (folder / "ca.crt").write_bytes(server_trust_anchor(settings))
    base_url = settings.base_url.rstrip("/")
    config = {
        "client_id": new.client_id,
        "client_secret": new.client_secret,
        "token_url": f"{base_url}/oauth/token",
        "base_url": base_url,
        "scopes": " ".join(new.scopes),
        "organisation": new.name,
        "organisation_oid": new.oid,
    }
    write_private(folder / "client.json", (json.dumps(config, indent=2) + "\n").encode())
    return folder
