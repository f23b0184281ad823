"""Protecting machine-to-machine endpoints: certificate, bearer token, scope.

`authenticate(scope)` accepts a request only when

1. the TLS client certificate is registered to an organisation (else 401);
2. the bearer token (RFC 6750 2.1) is a JWT access token of this hub
   (RFC 9068 4: signature with the hub's key, typ, iss, aud, exp) (else 401);
3. the token is bound to the presenting certificate (RFC 8705 3.2,
   ``cnf.x5t#S256``), was issued to that certificate's organisation (sub), and
   grants `scope` (RFC 6750 3.1 insufficient_scope) (else 403).

It only raises `AuthenticationFault` / `AuthorizationFault`; the SOAP and
JSON error mappers turn them into answers.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import g, request
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError

from hub.db import get_session
from hub.errors import AuthenticationFault, AuthorizationFault
from hub.security.identity import Caller
from hub.security.oauth import ALGORITHM, TOKEN_TYPE, signing_key
from hub.security.pki import thumbprint
from hub.security.tls import organisation_for_certificate, peer_certificate_der
from hub.settings import Settings
from hub.tables import OAuthClient

LEEWAY = 30  # seconds of clock skew tolerated on exp / nbf / iat

# Positive look-ups of certificate and client registrations are remembered this long
# in each worker process: two database round trips saved on every transaction, and a
# removed organisation or client is refused at most this many seconds later.
REGISTRATION_TTL = 10.0


@dataclass(frozen=True)
class _Organisation:
    id: int
    oid: str
    name: str


class _TtlCache:
    """A tiny thread-safe cache of positive answers, each kept `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if value is not None:
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_certificates = _TtlCache(REGISTRATION_TTL)
_clients = _TtlCache(REGISTRATION_TTL)


def forget_registrations() -> None:
    """Drop remembered registrations (tests, and after administrative changes in-process)."""
    _certificates.clear()
    _clients.clear()
    with _verified_lock:
        _verified.clear()


def _organisation_of_certificate(der: bytes) -> _Organisation | None:
    def load() -> _Organisation | None:
        organisation = organisation_for_certificate(get_session(), der)
        return None if organisation is None else _Organisation(organisation.id, organisation.oid,
                                                                 organisation.name)
    return _certificates.get(thumbprint(der), load)  # type: ignore[no-any-return]


def _organisation_of_client(client_id: str) -> int | None:
    def load() -> int | None:
        client = get_session().get(OAuthClient, client_id)
        return None if client is None else client.organisation_id
    return _clients.get(client_id, load)  # type: ignore[no-any-return]


def bearer_token() -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 2.1)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFault("a bearer access token is required", error="invalid_request")
    return token


# Tokens whose signature and claims were verified, by token: the signature check (ECDSA) is the
# dearest step of every request, and a client sends the same token for its whole lifetime. A hit
# is only taken for the same signing key and issuer, and its expiry is checked again every time.
_VERIFIED_MAX = 10_000
_verified: dict[str, tuple[object, str, float, dict[str, object]]] = {}
_verified_lock = threading.Lock()


def verify_access_token(settings: Settings, token: str) -> dict[str, object]:
    """The claims of a valid access token of this hub, else AuthenticationFault."""
    key = signing_key(settings)
    with _verified_lock:
        hit = _verified.get(token)
    if hit is not None and hit[0] is key and hit[1] == settings.base_url:
        if time.time() > hit[2] + LEEWAY:
            raise AuthenticationFault("the access token has expired")
        return dict(hit[3])
    claims = _verify_access_token(settings, token, key)
    expires = claims.get("exp")
    if isinstance(expires, int | float):
        with _verified_lock:
            if len(_verified) >= _VERIFIED_MAX:
                _verified.clear()
            _verified[token] = (key, settings.base_url, float(expires), dict(claims))
    return claims


def _verify_access_token(settings: Settings, token: str, key: Any) -> dict[str, object]:
    try:
        decoded = jwt.decode(token, key.public, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError) as exc:
        raise AuthenticationFault("the access token is malformed or not signed by this hub") from exc
    if decoded.header.get("typ") != TOKEN_TYPE:
        raise AuthenticationFault("not an access token (typ at+jwt expected)")
    issuer = settings.base_url.rstrip("/")
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": issuer},
        exp={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(decoded.claims)
    except ExpiredTokenError as exc:
        raise AuthenticationFault("the access token has expired") from exc
    except JoseError as exc:
        raise AuthenticationFault(f"the access token is not valid here: {exc.description}") from exc
    return dict(decoded.claims)


def require_scope(granted: frozenset[str], scope: str) -> None:
    if scope not in granted:
        raise AuthorizationFault(f"the access token does not grant the scope {scope!r}")


def authenticate(scope: str | None) -> Caller:
    """The verified caller of this request, allowed `scope` (None: any); else a 401/403 fault."""
    from hub import get_settings

    der = peer_certificate_der()
    if der is None:
        raise AuthenticationFault("a client certificate is required", error="invalid_request")
    organisation = _organisation_of_certificate(der)
    if organisation is None:
        raise AuthenticationFault("the client certificate is not registered to an organisation")
    claims = verify_access_token(get_settings(), bearer_token())

    presented = thumbprint(der)
    confirmation = claims.get("cnf")
    bound = confirmation.get("x5t#S256") if isinstance(confirmation, dict) else None
    if not isinstance(bound, str) or not hmac.compare_digest(bound, presented):
        raise AuthorizationFault("the access token is bound to another certificate (RFC 8705)",
                                 error="invalid_token")
    if claims.get("sub") != organisation.oid:
        raise AuthorizationFault("the access token was issued to another organisation", error="invalid_token")
    client_id = str(claims.get("client_id"))
    if _organisation_of_client(client_id) != organisation.id:
        raise AuthenticationFault("the access token's client is no longer registered")
    scopes = frozenset(str(claims.get("scope", "")).split())
    caller = Caller(
        organisation_id=organisation.id,
        organisation_oid=organisation.oid,
        organisation_name=organisation.name,
        client_id=client_id,
        thumbprint=presented,
        scopes=scopes,
    )
    g.caller = caller   # known now, so a refusal for scope is recorded against its organisation
    if scope is not None:
        require_scope(scopes, scope)
    return caller
