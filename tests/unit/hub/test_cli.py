"""The xdshub command: init, org add (bundle, duplicates, scopes, external certificates)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from sqlalchemy import select

from hub.cli import main
from hub.db import Database
from hub.security.pki import certificate_pem, issue_client_certificate, make_ca
from hub.settings import load_settings
from hub.tables import OAuthClient, Organisation, OrganisationCertificate


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    result = run("init", "--data-dir", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def test_init_creates_everything_and_is_idempotent(data_dir: Path) -> None:
    for name in ("hub.toml", "hub.db", "pki/ca.crt", "pki/ca.key", "pki/server.crt", "pki/server.key",
                 "pki/trusted-ca.crt", "pki/token-signing.key", "blobs"):
        assert (data_dir / name).exists(), name
    snapshot = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file() and p.suffix in (".toml", ".crt",
                                                                                              ".key")}
    (data_dir / "hub.toml").write_text((data_dir / "hub.toml").read_text() + "\n# operator note\n")
    snapshot[data_dir / "hub.toml"] = (data_dir / "hub.toml").read_bytes()
    again = run("init", "--data-dir", str(data_dir))
    assert again.exit_code == 0, again.output
    assert {p: p.read_bytes() for p in snapshot} == snapshot


def test_org_add_writes_the_bundle(data_dir: Path) -> None:
    result = run("org", "add", "St. Mary Radiology", "--oid", "1.2.3.100", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    folder = data_dir / "orgs" / "st-mary-radiology"
    for name in ("client.crt", "client.key", "ca.crt", "client.json"):
        assert (folder / name).exists(), name
    assert stat.S_IMODE((folder / "client.key").stat().st_mode) == 0o600
    assert (folder / "ca.crt").read_bytes() == (data_dir / "pki" / "ca.crt").read_bytes()
    config = json.loads((folder / "client.json").read_text())
    assert config["token_url"] == "https://127.0.0.1:8443/oauth/token"
    assert config["base_url"] == "https://127.0.0.1:8443"
    assert config["scopes"] == "xds:query xds:register xds:retrieve dicomweb:read dicomweb:write share:create"
    assert config["client_id"] and config["client_secret"]
    settings = load_settings(data_dir, environ={})
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            org = session.scalar(select(Organisation).where(Organisation.oid == "1.2.3.100"))
            assert org is not None and org.name == "St. Mary Radiology"
            client = session.get(OAuthClient, config["client_id"])
            assert client is not None and client.organisation_id == org.id
            assert config["client_secret"] not in client.secret_hash
    finally:
        database.dispose()


def test_org_add_with_out_and_scopes(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = run("org", "add", "Audit Office", "--oid", "1.2.3.9", "--data-dir", str(data_dir), "--out", str(out),
                 "--scopes", "audit:read xds:query")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "client.json").read_text())["scopes"] == "audit:read xds:query"


@pytest.mark.parametrize("args, message", [
    (("Org A", "--oid", "1.2.3.200"), "already registered"),
    (("Org B", "--oid", "1.2.3.100"), "already registered"),
    (("Org C", "--oid", "not-an-oid"), "is not an OID"),
    (("Org D", "--oid", "1.2.3.300", "--scopes", "xds:everything"), "unknown scope"),
])
def test_org_add_user_errors_exit_1_without_traceback(data_dir: Path, tmp_path: Path, args: tuple[str, ...],
                                                      message: str) -> None:
    first = run("org", "add", "Org A", "--oid", "1.2.3.100", "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    result = run("org", "add", *args, "--data-dir", str(data_dir), "--out", str(tmp_path / "other"))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "other" / "client.json").exists()


def test_org_add_twice_with_the_default_folder_names_the_duplicate(data_dir: Path) -> None:
    assert run("org", "add", "Org A", "--oid", "1.2.3.100", "--data-dir", str(data_dir)).exit_code == 0
    again = run("org", "add", "Org A", "--oid", "1.2.3.101", "--data-dir", str(data_dir))
    assert again.exit_code == 1
    assert "already registered" in again.output


def test_org_add_with_a_database_error_exits_1_and_leaves_no_bundle(data_dir: Path, tmp_path: Path) -> None:
    for path in data_dir.glob("hub.db*"):
        path.unlink()  # an empty database: no tables
    out = tmp_path / "bundle"
    result = run("org", "add", "Org A", "--oid", "1.2.3.100", "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 1
    assert "database error" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_init_with_an_unusable_database_url_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "hub.toml").write_text('database_url = "nonsense://"\n')
    result = run("init", "--data-dir", str(tmp_path / "var"))
    assert result.exit_code == 1
    assert "database error" in result.output and "nonsense" in result.output
    assert "Traceback" not in result.output


def test_org_add_before_init_is_a_clear_error(tmp_path: Path) -> None:
    result = run("org", "add", "Org A", "--oid", "1.2.3", "--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "xdshub init" in result.output


def test_org_add_registers_an_external_certificate(data_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(data_dir, environ={})
    cert_pem, _key = issue_client_certificate(settings, "External", "1.2.3.77")  # trusted CA, not registered
    cert_file = tmp_path / "external.crt"
    cert_file.write_bytes(cert_pem)
    out = tmp_path / "external"
    result = run("org", "add", "External", "--oid", "1.2.3.77", "--data-dir", str(data_dir), "--out", str(out),
                 "--cert", str(cert_file))
    assert result.exit_code == 0, result.output
    assert (out / "client.crt").read_bytes() == cert_pem
    assert not (out / "client.key").exists()
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            record = session.scalar(select(OrganisationCertificate))
            assert record is not None and record.pem.encode() == cert_pem
    finally:
        database.dispose()


def test_org_add_refuses_a_certificate_from_an_untrusted_ca(data_dir: Path, tmp_path: Path) -> None:
    foreign_ca, _ = make_ca("Somebody else's CA")
    cert_file = tmp_path / "foreign.crt"
    cert_file.write_bytes(certificate_pem(foreign_ca))
    result = run("org", "add", "Foreign", "--oid", "1.2.3.88", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "f"), "--cert", str(cert_file))
    assert result.exit_code == 1
    assert "not issued by a CA" in result.output
    assert isinstance(x509.load_pem_x509_certificate(cert_file.read_bytes()), x509.Certificate)


def test_org_add_with_unreadable_certificate_file(data_dir: Path, tmp_path: Path) -> None:
    result = run("org", "add", "X", "--oid", "1.2.3.89", "--data-dir", str(data_dir),
                 "--cert", str(tmp_path / "missing.crt"))
    assert result.exit_code == 1 and "cannot read" in result.output


def test_serve_before_init_is_a_clear_error(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "xdshub init" in result.output


def test_server_tls_context_requests_optional_client_certificates(data_dir: Path) -> None:
    import ssl

    from hub.server import make_ssl_context

    context = make_ssl_context(load_settings(data_dir, environ={}))
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is False


def test_peer_certificate_middleware_drops_client_supplied_values() -> None:
    from hub.security.tls import PEER_CERT_ENVIRON
    from hub.server import PeerCertificateMiddleware, _peer

    seen: list[object] = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.append(environ.get(PEER_CERT_ENVIRON))
        return [b""]

    middleware = PeerCertificateMiddleware(app)
    _peer.der = None
    middleware({PEER_CERT_ENVIRON: b"spoofed"}, lambda *a: None)
    _peer.der = b"verified"
    try:
        middleware({PEER_CERT_ENVIRON: b"spoofed"}, lambda *a: None)
    finally:
        _peer.der = None
    assert seen == [None, b"verified"]


@pytest.mark.parametrize("configured, host, port, expected", [
    ({}, None, None, "https://127.0.0.1:8443"),
    ({}, None, 9443, "https://127.0.0.1:9443"),
    ({}, "0.0.0.0", 9443, "https://127.0.0.1:9443"),
    ({}, "localhost", None, "https://localhost:8443"),
    ({}, "::1", 9443, "https://[::1]:9443"),
    ({"public_url": "https://hub.example.org"}, "0.0.0.0", 443, "https://hub.example.org"),
])
def test_serving_url_follows_the_bind_address(tmp_path: Path, configured: dict[str, str], host: str | None,
                                              port: int | None, expected: str) -> None:
    from hub.server import serving_settings

    settings = serving_settings(load_settings(tmp_path, environ={}, **configured), host, port)  # type: ignore[arg-type]
    assert settings.base_url == expected
