"""The hub's settings: one frozen dataclass, the only reader of os.environ.

Layers, later ones win: defaults, `DIR/hub.toml`, `XDSHUB_*` environment
variables, then explicit overrides (tests). Every key has a type, a default
and a line of documentation in `FIELD_DOCS`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("var")

FIELD_DOCS = {
    "data_dir": "folder with hub.toml, the database (SQLite default), the PKI and the blobs",
    "database_url": "SQLAlchemy URL; default sqlite:///DIR/hub.db",
    "storage_url": "where blobs live: file:///path (default DIR/blobs) or s3://bucket/prefix",
    "home_community_id": "this hub's XCA homeCommunityId (urn:oid:...)",
    "repository_unique_id": "this hub's repositoryUniqueId (an OID)",
    "dimse_port": "DICOM C-STORE/C-ECHO port; 0 turns DIMSE off",
    "dimse_ae_title": "the hub's AE title: the Called AE Title associations must name (PS3.8 7.1.1.4, 16 chars)",
    "dimse_tls": "DIMSE over TLS (PS3.15 B.1): the server certificate, client certificates required from ca_certs",
    "host": "address `xdshub serve` binds",
    "port": "HTTPS port of `xdshub serve`",
    "public_url": "the base URL clients use (issuer of tokens, token_url in client bundles)",
    "workers": "WSGI worker processes",
    "threads": "threads per worker",
    "max_body_bytes": "largest request body accepted (413 / SOAP fault beyond)",
    "max_upload_bytes": "largest MTOM request (documents included) accepted by POST /xds/repository",
    "registry_url": "ITI-42 endpoint of the registry this repository registers with; empty: this hub's own",
    "registry_bundle": "client bundle folder (from `xdshub org add` at that registry) for mTLS and OAuth",
    "audit_collectors": "ATNA syslog collectors (host:port) the audit trail is sent to over TLS (RFC 5425)",
    "audit_collector_ca": "PEM bundle of CAs that sign the collectors' certificates",
    "publish_quiet_seconds": "publish a study's manifest (RAD-68) once no new instance arrived for this long; 0: off",
    "console_session_idle": "seconds a console session lasts without a request before it must log in again",
    "console_session_lifetime": "seconds a console session lasts at most after login",
    "console_lockout_attempts": "consecutive failed console logins that lock an account",
    "console_lockout_seconds": "seconds a locked console account stays locked",
    "share_default_seconds": "how long a share link lasts when POST /api/shares names no expires_in",
    "share_max_seconds": "the longest a share link may last; a longer expires_in is cut to this",
    "share_passcode_attempts": "wrong passcodes that lock a share link for good",
    "share_visit_seconds": "how long one opening of a share link lasts in a browser (within the link's expiry)",
    "peer_timeout_seconds": "how long a query waits for each peer community (XCA) before naming it unavailable",
    "max_query_results": "stored queries matching more objects answer XDSTooManyResults",
    "token_lifetime": "access token lifetime in seconds",
    "server_cert": "PEM of the HTTPS server certificate (chain)",
    "server_key": "PEM of its private key",
    "ca_certs": "PEM bundle of CAs whose client certificates are trusted",
    "ca_cert": "the hub's own CA certificate (issues client certificates)",
    "ca_key": "the hub CA's private key (absent when an operator brings their own CA)",
    "signing_key": "private key (PEM) that signs access tokens",
    "restricted_confidentiality_codes": "confidentialityCodes visible only to the submitting organisation",
    "affinity_domain_oid": "assigning authority of the affinity domain's patient ids; set, registry submissions "
                           "and queries must name a known patient (a linked domain id or one with entries), else "
                           "XDSUnknownPatientId; empty: every patient id is accepted",
    "log_level": "logging level name",
}

ENVIRONMENT = {
    "XDSHUB_DATABASE_URL": "database_url",
    "XDSHUB_STORAGE_URL": "storage_url",
    "XDSHUB_HOME_COMMUNITY_ID": "home_community_id",
    "XDSHUB_REPOSITORY_UNIQUE_ID": "repository_unique_id",
    "XDSHUB_DIMSE_PORT": "dimse_port",
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    storage_url: str = ""
    home_community_id: str = "urn:oid:1.3.6.1.4.1.21367.2026.1"
    repository_unique_id: str = "1.3.6.1.4.1.21367.2026.1.1"
    dimse_port: int = 11112
    dimse_ae_title: str = "XDSHUB"
    dimse_tls: bool = False
    host: str = "127.0.0.1"
    port: int = 8443
    public_url: str = ""
    workers: int = 2
    threads: int = 8
    max_body_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 4 * 1024 * 1024 * 1024
    registry_url: str = ""
    registry_bundle: Path = Path("registry-client")
    audit_collectors: tuple[str, ...] = ()
    audit_collector_ca: Path = Path("pki/trusted-ca.crt")
    publish_quiet_seconds: int = 300
    console_session_idle: int = 15 * 60
    console_session_lifetime: int = 8 * 60 * 60
    console_lockout_attempts: int = 5
    console_lockout_seconds: int = 15 * 60
    share_default_seconds: int = 7 * 24 * 60 * 60
    share_max_seconds: int = 30 * 24 * 60 * 60
    share_passcode_attempts: int = 5
    share_visit_seconds: int = 12 * 60 * 60
    peer_timeout_seconds: int = 10
    max_query_results: int = 1000
    token_lifetime: int = 300
    server_cert: Path = Path("pki/server.crt")
    server_key: Path = Path("pki/server.key")
    ca_certs: Path = Path("pki/trusted-ca.crt")
    ca_cert: Path = Path("pki/ca.crt")
    ca_key: Path = Path("pki/ca.key")
    signing_key: Path = Path("pki/token-signing.key")
    restricted_confidentiality_codes: tuple[str, ...] = ("R", "V")
    affinity_domain_oid: str = ""
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.public_url or f"https://{self.host}:{self.port}"

    def path(self, value: Path) -> Path:
        """A settings path resolved against the data dir."""
        return value if value.is_absolute() else self.data_dir / value

    @property
    def toml_path(self) -> Path:
        return self.data_dir / "hub.toml"


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "int":
        return int(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    if kind == "Path":
        return Path(value)
    if kind.startswith("tuple"):
        return tuple(value.split(",") if isinstance(value, str) else value)
    return value


def load_settings(data_dir: Path | str | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Defaults, then DIR/hub.toml, then XDSHUB_* variables, then `overrides`."""
    environ = dict(os.environ if environ is None else environ)
    data_dir = Path(data_dir or environ.get("XDSHUB_DATA_DIR") or DEFAULT_DATA_DIR).absolute()
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)} - {"data_dir", "extra"}
    toml_file = data_dir / "hub.toml"
    extra: dict[str, Any] = {}
    if toml_file.exists():
        with toml_file.open("rb") as fh:
            for key, value in tomllib.load(fh).items():
                if key in known:
                    values[key] = _coerce(key, value)
                else:
                    extra[key] = value
    for var, name in ENVIRONMENT.items():
        if environ.get(var, "") != "":
            values[name] = _coerce(name, environ[var])
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(data_dir=data_dir, extra=extra, **values)
    if not settings.database_url:
        settings = replace(settings, database_url=f"sqlite:///{data_dir / 'hub.db'}")
    if not settings.storage_url:
        settings = replace(settings, storage_url=(data_dir / "blobs").as_uri())
    return settings


def render_toml(settings: Settings) -> str:
    """The hub.toml `xdshub init` writes: every setting with its documentation."""
    lines = ["# xdshub settings. XDSHUB_* environment variables override these.", ""]
    for f in fields(Settings):
        if f.name in ("data_dir", "extra"):
            continue
        value = getattr(settings, f.name)
        lines.append(f"# {FIELD_DOCS[f.name]}")
        if f.name in ("database_url", "storage_url") and value.startswith(("sqlite:///", "file://")) \
                and str(settings.data_dir) in value:
            lines.append(f"# {f.name} = {_toml_value(value)}")
            continue
        lines.append(f"{f.name} = {_toml_value(value)}")
    lines += REPOSITORIES_TOML
    return "\n".join(lines) + "\n"


# The other repositories of the affinity domain (repository.forwarding.repository_routes reads and checks them).
REPOSITORIES_TOML = [
    "",
    "# Other repositories of the affinity domain: ITI-43 and RAD-69 naming their repositoryUniqueId are",
    "# forwarded there over mutual TLS + OAuth. bundle: what `xdshub org add` wrote at that hub for this one",
    "# (relative to the data dir); url: default the bundle's base_url; timeout: seconds, default 30.",
    '# [repositories."1.3.6.1.4.1.21367.2026.2.1"]',
    '# url = "https://repo-b.example:8443"',
    '# bundle = "peers/repo-b"',
]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
