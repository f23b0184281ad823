"""Time values the hub stores and reads: always UTC, even where the database hands back naive ones."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """`moment` with its timezone; a naive value (SQLite gives those back) is UTC, as everything the hub stores."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_iso(text: str) -> datetime:
    """An ISO 8601 date or date-time ('Z' allowed); naive means UTC. ValueError when it is not one."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
