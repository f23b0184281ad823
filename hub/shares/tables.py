"""Share links and their visits.

A link is known by the SHA-256 of the random token in its URL, and a visit
(one opening of the link, by one browser) by the SHA-256 of the random token
in its cookie: a copy of the database hands out neither. A passcode is kept
only as an argon2id hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base

LINK = "link"        # made by an organisation through POST /api/shares
LAUNCH = "launch"    # made for a clinician by GET /IHEInvokeImageDisplay


class ShareLink(Base):
    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)            # public: API, audit ("share:<id>")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)         # hex SHA-256 of the URL's token
    kind: Mapped[str] = mapped_column(String(16), default=LINK)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(256))                     # OAuth client id, or console user
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_uids: Mapped[str] = mapped_column(Text, default="")               # space-separated; empty: all series
    recipient: Mapped[str] = mapped_column(String(256), default="")
    show_patient: Mapped[bool] = mapped_column(Boolean, default=True)
    passcode_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ShareVisit(Base):
    __tablename__ = "share_visits"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)   # hex SHA-256 of the cookie's token
    link_id: Mapped[str] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
