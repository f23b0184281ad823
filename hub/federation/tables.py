"""Patient identity links and XCA peers.

A patient link says that local id X at organisation A is affinity domain id
P (both in XDS CX form `ID^^^&OID&ISO`). A peer is another hub (community)
this hub queries and retrieves from as an initiating gateway; its bundle
folder (what `xdshub org add` wrote at that hub for this one) holds the
client certificate, key, CA and OAuth client.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base


class PatientLink(Base):
    __tablename__ = "patient_links"
    __table_args__ = (UniqueConstraint("organisation_id", "local_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    local_id: Mapped[str] = mapped_column(String(256))                  # CX, the organisation's own
    domain_id: Mapped[str] = mapped_column(String(256), index=True)     # CX, the affinity domain's
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Peer(Base):
    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    home_community_id: Mapped[str] = mapped_column(String(128), unique=True)   # urn:oid:...
    base_url: Mapped[str] = mapped_column(String(512))
    bundle_dir: Mapped[str] = mapped_column(String(1024))                      # absolute, or under the data dir
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
