"""The OAuth 2.0 authorization server: client credentials for provider systems.

- ``POST /oauth/token``: the client credentials grant (RFC 6749 4.4), the
  client authenticated with client_secret_basic (RFC 6749 2.3.1) or
  private_key_jwt (RFC 7523 2.2, OpenID Connect Core 9). The request must
  also come over mutual TLS with a registered certificate of the client's own
  organisation (RFC 8705 3: certificate-bound access tokens), else 401
  invalid_client. Scopes are narrowed to what the client was granted (RFC 6749 3.3).
- ``GET /oauth/jwks``: the token signing key as a JWK Set (RFC 7517 5).
- ``GET /.well-known/oauth-authorization-server``: metadata (RFC 8414 2, RFC 8705 3.3).

Access tokens are JWTs (RFC 9068 profile, ``typ: at+jwt``) signed ES256
(RFC 7518 3.4) with ``kid`` the RFC 7638 thumbprint of the signing key, and
claims iss, aud, sub (the organisation's OID), client_id, scope, iat, exp, jti
and ``cnf: {"x5t#S256": ...}`` naming the presenting certificate.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Blueprint, Flask, Response, current_app, g, jsonify
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from hub.db import get_session
from hub.organisations import KNOWN_SCOPES, verify_secret
from hub.security.pki import thumbprint
from hub.security.tls import organisation_for_certificate, peer_certificate_der
from hub.settings import Settings
from hub.tables import OAuthClient

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"                                   # RFC 9068 2.1
AUTH_METHODS = ("client_secret_basic", "private_key_jwt")
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256"]
EXTENSION = "xdshub.oauth"

blueprint = Blueprint("oauth", __name__)


# --- the signing key -------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    private: ECKey
    public: ECKey
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        data = dict(self.public.as_dict(private=False))
        data.update(kid=self.kid, use="sig", alg=ALGORITHM)
        return data


@functools.lru_cache(maxsize=8)
def _load_signing_key(path: str, _mtime_ns: int) -> SigningKey:
    private = ECKey.import_key(Path(path).read_bytes())
    public = ECKey.import_key(private.as_dict(private=False))
    return SigningKey(private, public, private.thumbprint())


def signing_key(settings: Settings) -> SigningKey:
    """The token signing key, loaded once per process (again if the file changes)."""
    path = settings.path(settings.signing_key)
    return _load_signing_key(str(path), path.stat().st_mtime_ns)


def token_endpoint(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}/oauth/token"


# --- clients ----------------------------------------------------------------

class Client(ClientMixin):  # type: ignore[misc]
    """An OAuth2 client row as authlib sees it: confidential, client credentials only."""

    def __init__(self, row: OAuthClient) -> None:
        self.client_id = row.client_id
        self.organisation_id = row.organisation_id
        self.scopes = tuple(row.scopes.split())
        self.secret_hash = row.secret_hash
        self.jwks = row.jwks

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """All granted scopes when none is asked; else the granted part of the request."""
        if not scope:
            return " ".join(self.scopes)
        allowed = [s for s in dict.fromkeys(scope.split()) if s in self.scopes]
        return " ".join(allowed) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


def query_client(client_id: str) -> Client | None:
    if not isinstance(client_id, str) or not client_id:
        return None
    row = get_session().get(OAuthClient, client_id)
    return Client(row) if row is not None else None


class _ReplayCache:
    """jti values of client assertions seen until they expire (RFC 7523 3, item 7).

    Per process: an assertion replayed to another worker within its (short)
    lifetime would still need the TLS client certificate of the organisation.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            for old in [k for k, exp in self._seen.items() if exp < now]:
                del self._seen[old]
            if key in self._seen:
                return False
            self._seen[key] = max(expires_at, now + 60)
            return True


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt: a JWT signed with the client's certificate key (RFC 7523 2.2)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, settings_source: Any) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._settings = settings_source
        self._replays = _ReplayCache()

    def get_audiences(self) -> list[str]:
        settings: Settings = self._settings()
        return [token_endpoint(settings), settings.base_url.rstrip("/")]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return self._replays.first_use(f"{claims['sub']}:{jti}", float(claims.get("exp", 0)))

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return KeySet.import_key_set(json.loads(client.jwks))


# --- the grant and the tokens ----------------------------------------------

@dataclass(frozen=True)
class TokenBinding:
    """Who the token is for: the organisation of the verified certificate, and that certificate."""

    organisation_oid: str
    thumbprint: str


class CertificateBoundClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials, only for a client whose organisation's certificate made the TLS connection."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        der = peer_certificate_der()
        if der is None:
            raise InvalidClientError(status_code=401, description="a client certificate is required (RFC 8705)")
        organisation = organisation_for_certificate(get_session(), der)
        if organisation is None or organisation.id != self.request.client.organisation_id:
            raise InvalidClientError(
                status_code=401, description="the client certificate does not belong to this client's organisation")
        g.xdshub_token_binding = TokenBinding(organisation.oid, thumbprint(der))


class JwtAccessTokens:
    """Issues certificate-bound JWT access tokens (RFC 9068, RFC 8705 3.1)."""

    def __call__(self, grant_type: str, client: Client, user: Any = None, scope: str | None = None,
                 expires_in: int | None = None, include_refresh_token: bool = False) -> dict[str, Any]:
        settings = _current_settings()
        granted = client.get_allowed_scope(scope)
        if granted is None:
            raise InvalidScopeError(description="none of the requested scopes is granted to this client")
        binding: TokenBinding | None = g.get("xdshub_token_binding")
        if binding is None:  # only CertificateBoundClientCredentials issues tokens
            raise InvalidClientError(status_code=401, description="a client certificate is required")
        lifetime = int(expires_in or settings.token_lifetime)
        key = signing_key(settings)
        now = int(time.time())
        claims = {
            "iss": settings.base_url.rstrip("/"),
            "aud": settings.base_url.rstrip("/"),
            "sub": binding.organisation_oid,
            "client_id": client.client_id,
            "scope": granted,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "cnf": {"x5t#S256": binding.thumbprint},
        }
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
        token = jwt.encode(header, claims, key.private, algorithms=[ALGORITHM])
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": granted}


class HubAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        if isinstance(error, InvalidClientError):
            error.status_code = 401  # RFC 6749 5.2: failed client authentication
        return super().handle_error_response(request, error)


def _current_settings() -> Settings:
    from hub import get_settings

    return get_settings()


def init_app(app: Flask) -> None:
    """Register the token, JWKS and metadata endpoints on `app`."""
    server = HubAuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=lambda token, request: None)
    server.register_token_generator("default", JwtAccessTokens())
    server.register_client_auth_method("private_key_jwt", PrivateKeyJwt(_current_settings))
    server.register_grant(CertificateBoundClientCredentials)
    app.extensions[EXTENSION] = server
    app.register_blueprint(blueprint)


@blueprint.post("/oauth/token")
def issue_token() -> Response:
    from hub.audit.web import record_token_request

    server: HubAuthorizationServer = current_app.extensions[EXTENSION]
    response: Response = server.create_token_response()
    answer = response.get_json(silent=True) or {}
    record_token_request(response.status_code, str(answer.get("scope", "")),
                         None if response.status_code == 200 else str(answer.get("error_description")
                                                                       or answer.get("error") or "refused"))
    return response


@blueprint.get("/oauth/jwks")
def jwks() -> Response:
    response = jsonify(keys=[signing_key(_current_settings()).public_jwk()])
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    settings = _current_settings()
    base = settings.base_url.rstrip("/")
    return jsonify({
        "issuer": base,
        "token_endpoint": token_endpoint(settings),
        "jwks_uri": f"{base}/oauth/jwks",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "scopes_supported": sorted(KNOWN_SCOPES),
        "tls_client_certificate_bound_access_tokens": True,
    })
