"""The token endpoint (RFC 6749 4.4, RFC 7523, RFC 8705), JWKS and metadata."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from hub.db import Database
from hub.organisations import DEFAULT_SCOPES
from hub.security.pki import thumbprint
from hub.settings import Settings
from tests.unit.hub.conftest import Org, get_token

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _claims(client: FlaskClient, token: str) -> dict[str, object]:
    keys = KeySet.import_key_set(client.get("/oauth/jwks").json)  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == keys.keys[0].kid
    return dict(decoded.claims)


def _assertion(org: Org, key_pem: bytes, audience: str, **overrides: object) -> str:
    now = int(time.time())
    claims = {"iss": org.new.client_id, "sub": org.new.client_id, "aud": audience,
              "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return jwt.encode({"alg": "ES256"}, claims, ECKey.import_key(key_pem), algorithms=["ES256"])


def test_client_secret_basic_issues_a_certificate_bound_jwt(client: FlaskClient, make_org: Callable[..., Org],
                                                            pki_settings: Settings) -> None:
    org = make_org()
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=org.basic,
                           environ_base=org.environ)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == pki_settings.token_lifetime
    assert body["scope"] == DEFAULT_SCOPES
    claims = _claims(client, body["access_token"])
    assert claims["iss"] == claims["aud"] == pki_settings.base_url
    assert claims["sub"] == "1.2.3.4.5"
    assert claims["client_id"] == org.new.client_id
    assert claims["scope"] == DEFAULT_SCOPES
    assert claims["cnf"] == {"x5t#S256": thumbprint(org.der)}
    assert claims["exp"] - claims["iat"] == pki_settings.token_lifetime  # type: ignore[operator]
    assert claims["jti"]


def test_private_key_jwt_signed_with_the_client_key(client: FlaskClient, make_org: Callable[..., Org],
                                                    pki_settings: Settings) -> None:
    org = make_org()
    assert org.new.key_pem is not None
    assertion = _assertion(org, org.new.key_pem, f"{pki_settings.base_url}/oauth/token")
    data = {"grant_type": "client_credentials", "scope": "xds:query",
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    response = client.post("/oauth/token", data=data, environ_base=org.environ)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _claims(client, response.json["access_token"])["scope"] == "xds:query"
    replay = client.post("/oauth/token", data=data, environ_base=org.environ)
    assert replay.status_code == 401 and replay.json["error"] == "invalid_client"
    assert "used before" in replay.json["error_description"]


def test_private_key_jwt_signed_by_another_key_is_refused(client: FlaskClient, make_org: Callable[..., Org],
                                                          pki_settings: Settings) -> None:
    org, other = make_org(), make_org("Org B", "1.2.3.4.6")
    assert other.new.key_pem is not None
    assertion = _assertion(org, other.new.key_pem, f"{pki_settings.base_url}/oauth/token")
    response = client.post("/oauth/token", environ_base=org.environ, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_private_key_jwt_for_another_audience_is_refused(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    assert org.new.key_pem is not None
    assertion = _assertion(org, org.new.key_pem, "https://elsewhere.example/oauth/token")
    response = client.post("/oauth/token", environ_base=org.environ, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code == 401


@pytest.mark.parametrize("credentials", [
    pytest.param(lambda org: (org.new.client_id, "wrong-secret"), id="wrong secret"),
    pytest.param(lambda org: ("no-such-client", org.new.client_secret), id="unknown client"),
])
def test_bad_client_credentials_are_401(client: FlaskClient, make_org: Callable[..., Org],
                                        credentials: Callable[[Org], tuple[str, str]]) -> None:
    org = make_org()
    client_id, secret = credentials(org)
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(client_id, secret), environ_base=org.environ)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_certificate_of_another_organisation_is_401(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org_a, org_b = make_org(), make_org("Org B", "1.2.3.4.6")
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=org_a.basic,
                           environ_base=org_b.environ)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_no_client_certificate_is_401(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=org.basic)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_unregistered_certificate_is_401(client: FlaskClient, make_org: Callable[..., Org],
                                         pki_settings: Settings) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from hub.security.pki import issue_client_certificate

    org = make_org()
    stray, _ = issue_client_certificate(pki_settings, "Org A", "1.2.3.4.5")  # same CA, never registered
    der = x509.load_pem_x509_certificate(stray).public_bytes(Encoding.DER)
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=org.basic,
                           environ_base={"xdshub.peer_cert_der": der})
    assert response.status_code == 401


def test_scope_is_narrowed_to_what_was_granted(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    token = get_token(client, org, scope="xds:query audit:read")
    assert _claims(client, token)["scope"] == "xds:query"


def test_scope_entirely_outside_the_grant_is_invalid_scope(client: FlaskClient,
                                                          make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "audit:read"},
                           headers=org.basic, environ_base=org.environ)
    assert response.status_code == 400 and response.json["error"] == "invalid_scope"


def test_audit_scope_only_when_granted(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org(scopes="xds:query audit:read")
    assert _claims(client, get_token(client, org, scope="audit:read"))["scope"] == "audit:read"


def test_other_grant_types_are_refused(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = client.post("/oauth/token", data={"grant_type": "password", "username": "x", "password": "y"},
                           headers=org.basic, environ_base=org.environ)
    assert response.status_code == 400 and response.json["error"] == "unsupported_grant_type"


def test_metadata_and_jwks(client: FlaskClient, pki_settings: Settings) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json
    base = pki_settings.base_url
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == f"{base}/oauth/token"
    assert meta["jwks_uri"] == f"{base}/oauth/jwks"
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "private_key_jwt"}
    assert meta["grant_types_supported"] == ["client_credentials"]
    jwks = client.get("/oauth/jwks").json
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and "d" not in key


def test_secret_is_not_stored_in_clear(make_org: Callable[..., Org], sqlite_database: Database) -> None:
    from hub.tables import OAuthClient

    org = make_org()
    with sqlite_database.session() as session:
        row = session.get(OAuthClient, org.new.client_id)
        assert row is not None
        assert org.new.client_secret not in row.secret_hash and row.secret_hash.startswith("scrypt$")
