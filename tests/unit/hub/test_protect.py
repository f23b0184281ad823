"""authenticate(scope): certificate, then a bound token of this hub, then the scope."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.test import TestResponse

from hub.security.oauth import signing_key
from hub.security.pki import issue_client_certificate, new_private_key, private_key_pem, thumbprint
from hub.settings import Settings
from tests.unit.hub.conftest import Org, get_token


def _forge(settings: Settings, org: Org, key: ECKey | None = None, **overrides: object) -> str:
    """A token with the claims the hub would issue, signed with `key` (default: the hub's)."""
    hub_key = signing_key(settings)
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.base_url, "aud": settings.base_url, "sub": org.new.oid, "client_id": org.new.client_id,
        "scope": "xds:query", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex,
        "cnf": {"x5t#S256": thumbprint(org.der)},
    }
    claims.update(overrides)
    header = {"alg": "ES256", "kid": hub_key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key or hub_key.private, algorithms=["ES256"])


def _call(client: FlaskClient, scope: str, token: str | None,
          environ: dict[str, bytes] | None) -> TestResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/_protected/{scope}", headers=headers, environ_base=environ or {})


def test_valid_token_and_certificate_give_the_caller(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = _call(client, "xds:query", get_token(client, org), org.environ)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["organisation"] == "1.2.3.4.5"
    assert response.json["client_id"] == org.new.client_id
    assert response.json["thumbprint"] == thumbprint(org.der)


def test_no_certificate_is_401(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = _call(client, "xds:query", get_token(client, org), None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_certificate_is_401(client: FlaskClient, make_org: Callable[..., Org],
                                    pki_settings: Settings) -> None:
    org = make_org()
    stray, _ = issue_client_certificate(pki_settings, "Stray", "9.9.9")
    der = x509.load_pem_x509_certificate(stray).public_bytes(Encoding.DER)
    response = _call(client, "xds:query", get_token(client, org), {"xdshub.peer_cert_der": der})
    assert response.status_code == 401


def test_token_presented_with_another_organisations_certificate_is_403(
        client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org_a, org_b = make_org(), make_org("Org B", "1.2.3.4.6")
    response = _call(client, "xds:query", get_token(client, org_a), org_b.environ)
    assert response.status_code == 403


def test_token_of_the_right_certificate_but_other_subject_is_403(
        client: FlaskClient, make_org: Callable[..., Org], pki_settings: Settings) -> None:
    org = make_org()
    response = _call(client, "xds:query", _forge(pki_settings, org, sub="1.2.3.4.6"), org.environ)
    assert response.status_code == 403


def test_missing_scope_is_403(client: FlaskClient, make_org: Callable[..., Org]) -> None:
    org = make_org()
    response = _call(client, "xds:register", get_token(client, org, scope="xds:query"), org.environ)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("make_token", [
    pytest.param(lambda s, o: None, id="no token"),
    pytest.param(lambda s, o: "not-a-jwt", id="malformed"),
    pytest.param(lambda s, o: _forge(s, o, exp=int(time.time()) - 120, iat=int(time.time()) - 600),
                 id="expired"),
    pytest.param(lambda s, o: _forge(s, o, ECKey.import_key(private_key_pem(new_private_key()))),
                 id="forged signature"),
    pytest.param(lambda s, o: _forge(s, o, iss="https://other-hub.example"), id="wrong issuer"),
    pytest.param(lambda s, o: _forge(s, o, aud="https://other-hub.example"), id="wrong audience"),
    pytest.param(lambda s, o: _forge(s, o, client_id="gone"), id="unknown client"),
])
def test_bad_tokens_are_401(client: FlaskClient, make_org: Callable[..., Org], pki_settings: Settings,
                            make_token: Callable[[Settings, Org], str | None]) -> None:
    org = make_org()
    response = _call(client, "xds:query", make_token(pki_settings, org), org.environ)
    assert response.status_code == 401, response.get_data(as_text=True)


def test_forged_token_without_typ_is_401(client: FlaskClient, make_org: Callable[..., Org],
                                         pki_settings: Settings) -> None:
    org = make_org()
    token = _forge(pki_settings, org)
    header = {"alg": "ES256"}
    claims = dict(jwt.decode(token, signing_key(pki_settings).public).claims)
    plain = jwt.encode(header, claims, signing_key(pki_settings).private)
    response = _call(client, "xds:query", plain, org.environ)
    assert response.status_code == 401
