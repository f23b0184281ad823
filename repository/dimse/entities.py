"""Calling AE titles registered per organisation: the only peers the DIMSE listener associates with.

An AE title is a value of VR AE (PS3.5 6.2): at most 16 characters of the
Default Character Repertoire, no backslash (5CH) and no control characters;
leading and trailing spaces are not significant, and a value of spaces only
shall not be used. Titles are kept stripped and compared exactly (AE titles
are case sensitive).

A registration may restrict where associations come from: an IP address or
a network in CIDR notation (`10.1.2.0/24`). Names are not accepted, so the
check never depends on DNS. The caller owns the transaction.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.tables import DicomApplicationEntity, Organisation

AE_TITLE_MAX_LENGTH = 16     # PS3.5 Table 6.2-1, VR AE

__all__ = [
    "AE_TITLE_MAX_LENGTH", "AeError", "CallingEntity", "add_entity", "find_calling_entity", "host_allowed",
    "list_entities",
    "normalise_ae_title", "normalise_host", "remove_entity",
]


class AeError(ValueError):
    """An AE title that cannot be registered or removed as asked; the message says why."""


@dataclass(frozen=True)
class CallingEntity:
    """A registered calling AE title with its organisation."""

    ae_title: str
    organisation_id: int
    organisation_oid: str
    organisation_name: str
    host: str | None
    created_at: datetime


def normalise_ae_title(value: str) -> str:
    """The AE title without its non-significant spaces; AeError when it is not a valid VR AE value."""
    title = value.strip(" ")
    if not title:
        raise AeError("an AE title of spaces only shall not be used (PS3.5 6.2, VR AE)")
    if len(title) > AE_TITLE_MAX_LENGTH:
        raise AeError(f"AE title {title!r} is longer than {AE_TITLE_MAX_LENGTH} characters (PS3.5 6.2, VR AE)")
    bad = sorted({c for c in title if c == "\\" or not " " <= c <= "~"})
    if bad:
        raise AeError(f"AE title {title!r} contains {', '.join(repr(c) for c in bad)}: only the Default "
                      "Character Repertoire without backslash and control characters is allowed (PS3.5 6.2)")
    return title


def normalise_host(value: str | None) -> str | None:
    """An IP address or CIDR network, normalised ("10.1.2.3", "10.1.2.0/24"); None for no restriction."""
    if value is None or not value.strip():
        return None
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise AeError(f"--host {value!r} is not an IP address or a network in CIDR notation") from None
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def host_allowed(restriction: str | None, address: str | None) -> bool:
    """Whether a peer at `address` may use a registration restricted to `restriction` (None: anywhere)."""
    if restriction is None:
        return True
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return peer in ipaddress.ip_network(restriction, strict=False)


def _calling(row: DicomApplicationEntity) -> CallingEntity:
    return CallingEntity(row.ae_title, row.organisation_id, row.organisation.oid, row.organisation.name, row.host,
                         row.created_at)


def add_entity(session: Session, ae_title: str, organisation_oid: str, host: str | None = None) -> CallingEntity:
    """Register `ae_title` for the organisation with OID `organisation_oid` (caller commits)."""
    title = normalise_ae_title(ae_title)
    restriction = normalise_host(host)
    organisation = session.scalar(select(Organisation).where(Organisation.oid == organisation_oid.strip()))
    if organisation is None:
        raise AeError(f"no organisation with OID {organisation_oid!r} is registered (`xdshub org add` first)")
    held = session.scalar(select(DicomApplicationEntity).where(DicomApplicationEntity.ae_title == title))
    if held is not None:
        raise AeError(f"AE title {title!r} is already registered to {held.organisation.name} "
                      f"({held.organisation.oid})")
    row = DicomApplicationEntity(ae_title=title, organisation=organisation, host=restriction,
                                 created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    return _calling(row)


def remove_entity(session: Session, ae_title: str) -> CallingEntity:
    """Remove a registered AE title (caller commits); AeError when it is not registered."""
    title = normalise_ae_title(ae_title)
    row = session.scalar(select(DicomApplicationEntity).where(DicomApplicationEntity.ae_title == title))
    if row is None:
        raise AeError(f"AE title {title!r} is not registered")
    removed = _calling(row)
    session.delete(row)
    session.flush()
    return removed


def list_entities(session: Session) -> list[CallingEntity]:
    """Every registered calling AE title, by title."""
    rows = session.scalars(select(DicomApplicationEntity).order_by(DicomApplicationEntity.ae_title))
    return [_calling(row) for row in rows]


def find_calling_entity(session: Session, ae_title: str) -> CallingEntity | None:
    """The registration of a calling AE title as received (spaces not significant), None when unknown."""
    try:
        title = normalise_ae_title(ae_title)
    except AeError:
        return None
    row = session.scalar(select(DicomApplicationEntity).where(DicomApplicationEntity.ae_title == title))
    return None if row is None else _calling(row)
