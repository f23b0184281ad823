"""Mutual TLS against the real `xdshub serve`: optional client certificates, foreign CAs
refused at the handshake, certificate-bound tokens, and no way to spoof the peer certificate."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwt
from joserfc.jwk import KeySet

from hub.security.pki import init_pki, issue_client_certificate, thumbprint
from hub.settings import load_settings
from tests.functional.conftest import RunningHub

pytestmark = pytest.mark.functional


def _credentials(bundle: Path) -> tuple[str, str]:
    config = json.loads((bundle / "client.json").read_text())
    return config["client_id"], config["client_secret"]


def _token(hub: RunningHub, bundle: Path, scope: str) -> str:
    """A token the way a provider gets one: mTLS with its certificate, client_secret_basic."""
    with requests.post(f"{hub.url}/oauth/token", data={"grant_type": "client_credentials", "scope": scope},
                       auth=_credentials(bundle), verify=str(bundle / "ca.crt"), timeout=10,
                       cert=(str(bundle / "client.crt"), str(bundle / "client.key"))) as response:
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def _der(bundle: Path) -> bytes:
    return x509.load_pem_x509_certificate((bundle / "client.crt").read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def foreign_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A client certificate and key from a CA the hub does not trust (made by the same PKI module)."""
    folder = tmp_path_factory.mktemp("foreign")
    settings = load_settings(folder / "pki-home", environ={})
    settings.data_dir.mkdir(parents=True)
    init_pki(settings)
    cert, key = issue_client_certificate(settings, "Mallory", "1.3.6.1.4.1.21367.2026.666")
    (folder / "client.crt").write_bytes(cert)
    (folder / "client.key").write_bytes(key)
    return folder


def test_healthz_and_metadata_without_a_client_certificate(running_hub: RunningHub) -> None:
    with requests.get(f"{running_hub.url}/healthz", verify=str(running_hub.ca), timeout=10) as response:
        assert response.status_code == 200
    with requests.get(f"{running_hub.url}/.well-known/oauth-authorization-server", verify=str(running_hub.ca),
                      timeout=10) as response:
        assert response.json()["issuer"] == running_hub.url
    with requests.get(f"{running_hub.url}/metrics", verify=str(running_hub.ca), timeout=10) as response:
        assert response.status_code == 200


def test_foreign_ca_certificate_fails_the_handshake(running_hub: RunningHub, foreign_bundle: Path) -> None:
    # TLS 1.2: the server checks the client certificate inside the handshake.
    context = ssl.create_default_context(cafile=str(running_hub.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(foreign_bundle / "client.crt"), str(foreign_bundle / "client.key"))
    with socket.create_connection(("127.0.0.1", running_hub.settings.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                tls.recv(1024)
    # Whatever TLS version the client library picks, no answer comes back.
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(f"{running_hub.url}/healthz", verify=str(running_hub.ca), timeout=10,
                     cert=(str(foreign_bundle / "client.crt"), str(foreign_bundle / "client.key")))


def test_token_with_the_organisation_certificate(running_hub: RunningHub) -> None:
    bundle = running_hub.bundle("Org A")
    token = _token(running_hub, bundle, "xds:query")
    with requests.get(f"{running_hub.url}/oauth/jwks", verify=str(running_hub.ca), timeout=10) as response:
        keys = KeySet.import_key_set(response.json())
    claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
    assert claims["sub"] == running_hub.oids["Org A"]
    assert claims["scope"] == "xds:query"
    assert claims["cnf"] == {"x5t#S256": thumbprint(_der(bundle))}
    assert claims["iss"] == running_hub.url


def test_token_endpoint_needs_the_organisations_own_certificate(running_hub: RunningHub) -> None:
    bundle_a, bundle_b = running_hub.bundle("Org A"), running_hub.bundle("Org B")
    data = {"grant_type": "client_credentials"}
    url = f"{running_hub.url}/oauth/token"
    ca = str(running_hub.ca)
    with requests.post(url, data=data, auth=_credentials(bundle_a), verify=ca, timeout=10) as response:
        assert response.status_code == 401  # no certificate at all
    with requests.post(url, data=data, auth=_credentials(bundle_a), verify=ca, timeout=10,
                       cert=(str(bundle_b / "client.crt"), str(bundle_b / "client.key"))) as response:
        assert response.status_code == 401  # another organisation's certificate
        assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("header", ["xdshub.peer_cert_der", "Xdshub-Peer-Cert-Der", "X-SSL-Client-Cert",
                                    "X-Client-Cert", "SSL-Client-Cert"])
def test_client_sent_headers_cannot_spoof_the_peer_certificate(running_hub: RunningHub, header: str) -> None:
    bundle_a = running_hub.bundle("Org A")
    der_a = _der(bundle_a)
    spoof = {header: base64.b64encode(der_a).decode()}
    url = f"{running_hub.url}/oauth/token"
    with requests.post(url, data={"grant_type": "client_credentials"}, auth=_credentials(bundle_a),
                       headers=spoof, verify=str(running_hub.ca), timeout=10) as response:
        assert response.status_code == 401
    bundle_b = running_hub.bundle("Org B")
    with requests.post(url, data={"grant_type": "client_credentials"}, auth=_credentials(bundle_a),
                       headers=spoof, verify=str(running_hub.ca), timeout=10,
                       cert=(str(bundle_b / "client.crt"), str(bundle_b / "client.key"))) as response:
        assert response.status_code == 401


def _stored_query_envelope(url: str) -> bytes:
    from hub.soap.envelope import NS_SOAP12, NS_WSA
    from registry.vocabulary import ACTION_STORED_QUERY

    return (
        f'<s:Envelope xmlns:s="{NS_SOAP12}" xmlns:a="{NS_WSA}"><s:Header>'
        f'<a:Action s:mustUnderstand="true">{ACTION_STORED_QUERY}</a:Action>'
        f'<a:MessageID>urn:uuid:6b9a1b0e-8d8f-4b6e-9b59-3c5b2b4d0a11</a:MessageID><a:To>{url}</a:To>'
        '</s:Header><s:Body><query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"'
        ' xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><query:ResponseOption returnType="ObjectRef"/>'
        '<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"/></query:AdhocQueryRequest>'
        '</s:Body></s:Envelope>'
    ).encode()


def test_token_bound_to_another_certificate_is_refused_by_the_registry(running_hub: RunningHub) -> None:
    from registry.vocabulary import ACTION_STORED_QUERY

    bundle_a, bundle_b = running_hub.bundle("Org A"), running_hub.bundle("Org B")
    token_a = _token(running_hub, bundle_a, "xds:query")
    url = f"{running_hub.url}/xds/registry"
    headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{ACTION_STORED_QUERY}"',
               "Authorization": f"Bearer {token_a}"}
    body = _stored_query_envelope(url)
    common = {"data": body, "headers": headers, "verify": str(running_hub.ca), "timeout": 30}
    with requests.post(url, cert=(str(bundle_b / "client.crt"), str(bundle_b / "client.key")),
                       **common) as response:  # type: ignore[arg-type]
        assert response.status_code == 403
    with requests.post(url, **common) as response:  # type: ignore[arg-type]
        assert response.status_code == 401
    with requests.post(url, cert=(str(bundle_a / "client.crt"), str(bundle_a / "client.key")),
                       **common) as response:  # type: ignore[arg-type]
        assert response.status_code not in (401, 403), response.text
