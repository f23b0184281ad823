"""xdshub peer add, list and remove on real data dirs: hub B registers hub C as an organisation, C adds B."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from hub.federation.tables import Peer
from hub.settings import load_settings

COMMUNITY_B = "1.3.6.1.4.1.21367.2026.500"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def hubs(tmp_path: Path) -> tuple[Path, Path]:
    """Hub C's data dir, and the bundle hub B wrote for C."""
    hub_b, hub_c = tmp_path / "b", tmp_path / "c"
    for folder in (hub_b, hub_c):
        assert run("init", "--data-dir", str(folder)).exit_code == 0
    made = run("org", "add", "Hub C", "--oid", "1.3.6.1.4.1.21367.2026.600", "--data-dir", str(hub_b),
               "--out", str(tmp_path / "for-c"), "--scopes", "xds:query xds:retrieve")
    assert made.exit_code == 0, made.output
    return hub_c, tmp_path / "for-c"


def test_add_list_remove(hubs: tuple[Path, Path]) -> None:
    hub_c, bundle = hubs
    added = run("peer", "add", "hub-b", "--community", COMMUNITY_B, "--bundle", str(bundle), "--data-dir", str(hub_c))
    assert added.exit_code == 0, added.output
    assert f"peer hub-b (urn:oid:{COMMUNITY_B})" in added.output
    copy = hub_c / "peers" / "hub-b"
    assert (copy / "client.key").read_bytes() == (bundle / "client.key").read_bytes()
    assert stat.S_IMODE((copy / "client.key").stat().st_mode) == 0o600
    shutil.rmtree(bundle)                                   # the copy is what is used
    listed = run("peer", "list", "--data-dir", str(hub_c))
    assert f"hub-b\turn:oid:{COMMUNITY_B}\thttps://" in listed.output
    database = Database(load_settings(hub_c, environ={}).database_url)
    try:
        with database.session() as session:
            (record,) = session.scalars(select(AuditRecord).where(AuditRecord.event_type == "110128"))
            assert "hub-b" in record.message
        assert run("peer", "remove", "hub-b", "--data-dir", str(hub_c)).exit_code == 0
        with database.session() as session:
            assert session.scalar(select(Peer.id)) is None
    finally:
        database.dispose()
    assert not copy.exists()


@pytest.mark.parametrize("change, community, message", [
    ("missing-key", COMMUNITY_B, "missing client.key"),
    ("", "not-an-oid", "the community must be an OID"),
    ("", "urn:oid:1.3.6.1.4.1.21367.2026.1", "this hub's own community"),
    ("http", COMMUNITY_B, "must be https"),
])
def test_bad_peers_are_refused_clearly(hubs: tuple[Path, Path], change: str, community: str, message: str) -> None:
    hub_c, bundle = hubs
    if change == "missing-key":
        (bundle / "client.key").unlink()
    if change == "http":
        config = bundle / "client.json"
        config.write_text(config.read_text().replace("https://", "http://"))
    refused = run("peer", "add", "hub-b", "--community", community, "--bundle", str(bundle),
                  "--data-dir", str(hub_c))
    assert refused.exit_code != 0 and message in refused.output
    assert not (hub_c / "peers" / "hub-b").exists()


def test_a_second_peer_of_the_same_name_or_community_is_refused(hubs: tuple[Path, Path]) -> None:
    hub_c, bundle = hubs
    common = ("--bundle", str(bundle), "--data-dir", str(hub_c))
    assert run("peer", "add", "hub-b", "--community", COMMUNITY_B, *common).exit_code == 0
    again = run("peer", "add", "hub-b2", "--community", f"urn:oid:{COMMUNITY_B}", *common)
    assert again.exit_code != 0 and "exists already" in again.output
    assert run("peer", "remove", "nobody", "--data-dir", str(hub_c)).output.strip().endswith("no peer 'nobody'")
