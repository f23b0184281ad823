"""`xdshub init`: a data dir with settings, PKI, database schema and blob folder.

Every step leaves existing work alone, so running it again is harmless and
completes whatever an interrupted run left undone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from hub.db import Database
from hub.security.pki import init_pki
from hub.settings import Settings, load_settings, render_toml


def _write_settings_once(data_dir: Path, overrides: dict[str, Any]) -> None:
    """hub.toml with defaults and explicit overrides; environment variables stay out of it."""
    path = data_dir / "hub.toml"
    if path.exists():
        return
    tmp = path.with_name(".hub.toml.tmp")
    tmp.write_text(render_toml(load_settings(data_dir, environ={}, **overrides)), encoding="utf-8")
    tmp.replace(path)


def blob_folder(settings: Settings) -> Path | None:
    """The local folder of a file:// storage URL (other backends manage themselves)."""
    parsed = urlparse(settings.storage_url)
    if parsed.scheme != "file":
        return None
    return Path(url2pathname(parsed.path))


def initialise(data_dir: Path | str, **overrides: Any) -> Settings:
    """Create (or complete) a hub's data dir and return its settings (idempotent)."""
    data_dir = Path(data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_settings_once(data_dir, overrides)
    settings = load_settings(data_dir, **overrides)
    init_pki(settings)
    database = Database(settings.database_url)
    try:
        database.upgrade()
    finally:
        database.dispose()
    folder = blob_folder(settings)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return settings
