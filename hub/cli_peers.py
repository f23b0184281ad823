"""`xdshub peer add|list|remove`: other hubs (communities) this hub queries and retrieves from (XCA).

FOLDER is what `xdshub org add` wrote at the other hub for this one. Every
change is recorded in the audit trail.
"""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli import DATA_DIR, command_session


@click.group("peer")
def peer() -> None:
    """Federated hubs (XCA peers)."""


def _peers(data_dir: Path | None):  # type: ignore[no-untyped-def]
    from hub.federation.peers import PeerError

    return command_session(data_dir, (PeerError,), "that peer was added meanwhile")


@peer.command("add")
@click.argument("name")
@click.option("--community", required=True, metavar="OID", help="the peer's homeCommunityId (urn:oid:… or the OID)")
@click.option("--bundle", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="the folder `xdshub org add` wrote at the peer for this hub")
@DATA_DIR
def peer_add(name: str, community: str, bundle: Path, data_dir: Path | None) -> None:
    """Federate with hub NAME of community OID."""
    from hub.audit import commands
    from hub.federation.peers import add_peer

    with _peers(data_dir) as (session, settings):
        added = add_peer(session, settings, name, community, bundle)
        commands.peer_changed(session, settings, added.name, added.home_community_id, added.base_url, "added")
    click.echo(f"peer {added.name} ({added.home_community_id}) at {added.base_url} added")


@peer.command("list")
@DATA_DIR
def peer_list(data_dir: Path | None) -> None:
    """The peers: name, community, base URL."""
    from hub.federation.peers import list_peers

    with _peers(data_dir) as (session, settings):
        rows = list_peers(session, settings)
    if not rows:
        click.echo("no peers; add one with `xdshub peer add NAME --community OID --bundle FOLDER`")
    for row in rows:
        click.echo(f"{row.name}\t{row.home_community_id}\t{row.base_url}")


@peer.command("remove")
@click.argument("name")
@DATA_DIR
def peer_remove(name: str, data_dir: Path | None) -> None:
    """Stop federating with NAME (its bundle copy is deleted)."""
    from hub.audit import commands
    from hub.federation.peers import remove_peer

    with _peers(data_dir) as (session, settings):
        removed = remove_peer(session, settings, name)
        commands.peer_changed(session, settings, removed.name, removed.home_community_id, removed.base_url,
                              "removed")
    click.echo(f"peer {name} removed")
