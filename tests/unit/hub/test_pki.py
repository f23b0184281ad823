"""The development PKI: chains verify, names and usages are right, init is idempotent."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from hub.security.pki import PkiError, init_pki, issue_client_certificate, load_certificates, thumbprint
from hub.settings import Settings

KEY_FILES = ("ca_key", "server_key", "signing_key")
ALL_FILES = ("ca_cert", "server_cert", "ca_certs") + KEY_FILES


def _path(settings: Settings, name: str):  # type: ignore[no-untyped-def]
    return settings.path(getattr(settings, name))


def test_creates_every_file_with_private_keys_0600(pki_settings: Settings) -> None:
    for name in ALL_FILES:
        assert _path(pki_settings, name).exists(), name
    for name in KEY_FILES:
        assert stat.S_IMODE(_path(pki_settings, name).stat().st_mode) == 0o600, name
    assert _path(pki_settings, "ca_certs").read_bytes() == _path(pki_settings, "ca_cert").read_bytes()


def test_ca_is_a_p256_ca_for_ten_years(pki_settings: Settings) -> None:
    ca = load_certificates(_path(pki_settings, "ca_cert"))[0]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(ca.public_key().curve, ec.SECP256R1)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3649) < lifetime < timedelta(days=3651)


def test_server_chain_verifies_for_localhost_and_loopback(pki_settings: Settings) -> None:
    chain = load_certificates(_path(pki_settings, "server_cert"))
    ca = load_certificates(_path(pki_settings, "ca_cert"))[0]
    assert len(chain) == 2 and chain[1] == ca
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"),
                                                             ipaddress.ip_address("::1")}
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    store = Store([ca])
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        verifier = PolicyBuilder().store(store).build_server_verifier(name)
        verified = verifier.verify(leaf, [])
        assert verified[-1] == ca


def test_client_certificate_names_the_organisation_and_verifies(pki_settings: Settings) -> None:
    cert_pem, key_pem = issue_client_certificate(pki_settings, "Org A", "1.2.3.4")
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Org A"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == "1.2.3.4"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=725) < lifetime <= timedelta(days=731)
    ca = load_certificates(_path(pki_settings, "ca_cert"))[0]
    cert.verify_directly_issued_by(ca)
    verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
    assert verifier.verify(cert, []).chain[-1] == ca
    assert b"PRIVATE KEY" in key_pem


def test_init_is_idempotent_and_keeps_existing_files(pki_settings: Settings) -> None:
    before = {name: _path(pki_settings, name).read_bytes() for name in ALL_FILES}
    init_pki(pki_settings)
    assert {name: _path(pki_settings, name).read_bytes() for name in ALL_FILES} == before


def test_missing_server_certificate_is_reissued_by_the_same_ca(pki_settings: Settings) -> None:
    ca_before = _path(pki_settings, "ca_cert").read_bytes()
    _path(pki_settings, "server_cert").unlink()
    init_pki(pki_settings)
    assert _path(pki_settings, "ca_cert").read_bytes() == ca_before
    chain = load_certificates(_path(pki_settings, "server_cert"))
    chain[0].verify_directly_issued_by(load_certificates(_path(pki_settings, "ca_cert"))[0])


def test_without_ca_key_no_certificates_are_issued(pki_settings: Settings) -> None:
    _path(pki_settings, "ca_key").unlink()
    init_pki(pki_settings)  # an operator's own CA: nothing to do, nothing breaks
    with pytest.raises(PkiError, match="no CA key"):
        issue_client_certificate(pki_settings, "Org A", "1.2.3.4")


def test_thumbprint_is_rfc8705_x5t_s256(pki_settings: Settings) -> None:
    cert = load_certificates(_path(pki_settings, "ca_cert"))[0]
    der = cert.public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert thumbprint(der) == expected
    assert len(expected) == 43 and "=" not in expected
