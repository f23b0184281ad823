"""Settings layering: defaults, hub.toml, XDSHUB_* variables, explicit overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hub.settings import load_settings, render_toml


def test_defaults_put_everything_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'hub.db'}"
    assert settings.storage_url == (tmp_path / "blobs").as_uri()
    assert settings.path(settings.ca_cert) == tmp_path / "pki" / "ca.crt"
    assert settings.base_url == "https://127.0.0.1:8443"


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        'home_community_id = "urn:oid:1.2.3"\nport = 9443\nmax_query_results = 50\n'
        'dimse_port = 104\nunknown_key = "kept aside"\n')
    env = {"XDSHUB_DIMSE_PORT": "0", "XDSHUB_DATABASE_URL": "postgresql+psycopg://u@h/db",
           "XDSHUB_REPOSITORY_UNIQUE_ID": "1.2.3.4", "XDSHUB_STORAGE_URL": "s3://bucket/prefix",
           "XDSHUB_HOME_COMMUNITY_ID": "urn:oid:9.9"}
    settings = load_settings(tmp_path, environ=env, max_query_results=10)
    assert settings.port == 9443
    assert settings.dimse_port == 0
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.storage_url == "s3://bucket/prefix"
    assert settings.repository_unique_id == "1.2.3.4"
    assert settings.home_community_id == "urn:oid:9.9"
    assert settings.max_query_results == 10
    assert settings.extra == {"unknown_key": "kept aside"}


def test_rendered_toml_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={}, port=9000)
    text = render_toml(settings)
    tomllib.loads(text)
    (tmp_path / "hub.toml").write_text(text)
    assert load_settings(tmp_path, environ={}) == settings
    # the default database and storage stay relative to the data dir (commented out)
    assert "# database_url" in text
