"""Who is calling: the organisation behind a verified certificate and token."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    """An authenticated machine-to-machine caller.

    Built by `hub.security.protect.authenticate` once both the client
    certificate (mapped to a registered organisation) and the bearer token
    (bound to that certificate, RFC 8705) have been verified.
    """

    organisation_id: int
    organisation_oid: str
    organisation_name: str
    client_id: str
    thumbprint: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
