"""Peers: other hubs (communities) this hub asks as an XCA initiating gateway.

Two hubs federate the way any provider joins. Hub B registers hub C as an
organisation (`xdshub org add` at B writes a bundle: client certificate and
key issued by B's CA, B's CA certificate, and `client.json` with the OAuth
client, token URL and B's base URL). C then adds B as a peer from that bundle:
`xdshub peer add B --community OID --bundle FOLDER`. The bundle is copied into
`DIR/peers/<name>` (the key readable by its owner only), so C keeps working
when the folder it came from is removed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.federation.tables import Peer
from hub.organisations import BUNDLE_FILES
from hub.settings import Settings

__all__ = ["BUNDLE_FILES", "PeerError", "PeerTarget", "add_peer", "list_peers", "peers_to_ask",
           "remove_peer"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
COMMUNITY = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")


class PeerError(ValueError):
    """A peer that cannot be added or removed, with what to fix."""


@dataclass(frozen=True)
class PeerTarget:
    """What the initiating gateway needs of a peer, copied out of the database row."""

    name: str
    home_community_id: str
    base_url: str
    bundle: Path


def community_id(value: str) -> str:
    """`urn:oid:OID` from an OID with or without the prefix; PeerError when it is not one."""
    candidate = value if value.startswith("urn:oid:") else f"urn:oid:{value}"
    if not COMMUNITY.fullmatch(candidate) or len(candidate) > 128:
        raise PeerError(f"the community must be an OID (urn:oid:1.2.3 or 1.2.3), got {value[:80]!r}")
    return candidate


def _check_bundle(folder: Path) -> dict[str, str]:
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise PeerError(f"{folder} is not a client bundle (from `xdshub org add` at the peer): "
                        f"missing {', '.join(missing)}")
    try:
        config = json.loads((folder / "client.json").read_text(encoding="utf-8"))
        for name in ("client.crt", "ca.crt"):
            x509.load_pem_x509_certificates((folder / name).read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PeerError(f"{folder}: unreadable bundle: {exc}") from exc
    for key in ("client_id", "client_secret", "token_url", "base_url"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise PeerError(f"{folder}/client.json has no {key}")
    if not config["base_url"].startswith("https://"):
        raise PeerError(f"{folder}/client.json: the peer's base_url must be https, got {config['base_url'][:80]!r}")
    return config


def add_peer(session: Session, settings: Settings, name: str, community: str, bundle: Path) -> Peer:
    """Record peer `name` of community `community`, its bundle copied under the data dir."""
    if not NAME.fullmatch(name):
        raise PeerError(f"a peer name is letters, digits, '.', '_' and '-' (at most 64), got {name[:80]!r}")
    home = community_id(community)
    if home == settings.home_community_id:
        raise PeerError(f"{home} is this hub's own community")
    config = _check_bundle(bundle)
    if session.scalar(select(Peer.id).where((Peer.name == name) | (Peer.home_community_id == home))) is not None:
        raise PeerError(f"a peer named {name} or of community {home} exists already; remove it first")
    target = settings.data_dir / "peers" / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True, mode=0o700)
    for file in BUNDLE_FILES:
        shutil.copyfile(bundle / file, target / file)
    (target / "client.key").chmod(0o600)
    peer = Peer(name=name, home_community_id=home, base_url=config["base_url"].rstrip("/"),
                bundle_dir=str(target.relative_to(settings.data_dir)), created_at=datetime.now(UTC))
    session.add(peer)
    session.flush()
    return peer


def list_peers(session: Session, settings: Settings) -> list[PeerTarget]:
    return [PeerTarget(p.name, p.home_community_id, p.base_url, settings.path(Path(p.bundle_dir)))
            for p in session.scalars(select(Peer).order_by(Peer.name))]


def remove_peer(session: Session, settings: Settings, name: str) -> Peer:
    peer = session.scalar(select(Peer).where(Peer.name == name))
    if peer is None:
        raise PeerError(f"no peer {name!r}")
    session.delete(peer)
    folder = settings.path(Path(peer.bundle_dir))
    if folder.is_dir() and folder.parent == settings.data_dir / "peers":
        shutil.rmtree(folder)
    return peer


def peers_to_ask(session: Session, settings: Settings, home: str | None) -> list[PeerTarget]:
    """The peers a local query goes to as well: all of them, or the one its `home` names (none when it names
    this hub)."""
    targets = list_peers(session, settings)
    if home:
        return [t for t in targets if t.home_community_id == home]
    return targets
