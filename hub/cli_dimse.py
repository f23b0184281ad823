"""`xdshub ae add|list|remove` (calling AE titles per organisation) and `xdshub dimse serve` (the listener).

Every registration and removal is recorded in the audit trail (Security Alert,
type 110137) with the operator who made it. `dimse serve` runs the C-STORE /
C-ECHO SCP in the foreground until SIGTERM or SIGINT; `xdshub serve` starts
it as a process of its own when `dimse_port` is not 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from hub.cli import DATA_DIR, command_session, fail, initialised_settings
from hub.settings import Settings


@click.group("ae")
def ae() -> None:
    """Calling AE titles of the organisations' modalities and gateways (DIMSE)."""


@contextmanager
def _entities(data_dir: Path | None) -> Iterator[tuple[Session, Settings]]:
    """A session on the hub's database, committed at the end; AeError and database errors as one line."""
    from repository.dimse.entities import AeError

    with command_session(data_dir, (AeError,), "the AE title was registered meanwhile") as opened:
        yield opened


@ae.command("add")
@click.argument("ae_title")
@click.option("--org", "organisation_oid", required=True, help="OID of the organisation the AE belongs to")
@click.option("--host", default=None, help="accept associations only from this IP address or CIDR network")
@DATA_DIR
def ae_add(ae_title: str, organisation_oid: str, host: str | None, data_dir: Path | None) -> None:
    """Register calling AE title AE_TITLE for an organisation."""
    from hub.audit import commands
    from repository.dimse.entities import add_entity

    with _entities(data_dir) as (session, settings):
        entity = add_entity(session, ae_title, organisation_oid, host)
        commands.application_entity_changed(session, settings, entity.ae_title, entity.organisation_oid,
                                            entity.host, "added")
    where = f", from {entity.host} only" if entity.host else ""
    click.echo(f"registered AE title {entity.ae_title} for {entity.organisation_name} "
               f"({entity.organisation_oid}){where}")


@ae.command("list")
@DATA_DIR
def ae_list(data_dir: Path | None) -> None:
    """The registered calling AE titles."""
    from repository.dimse.entities import list_entities

    with _entities(data_dir) as (session, _settings):
        entities = list_entities(session)
    if not entities:
        click.echo("no AE title registered (xdshub ae add AE_TITLE --org OID)")
        return
    for entity in entities:
        click.echo(f"{entity.ae_title:<16}  {entity.organisation_oid:<28}  {entity.host or '*':<18}  "
                   f"{entity.organisation_name}")


@ae.command("remove")
@click.argument("ae_title")
@DATA_DIR
def ae_remove(ae_title: str, data_dir: Path | None) -> None:
    """Remove calling AE title AE_TITLE: it can no longer associate."""
    from hub.audit import commands
    from repository.dimse.entities import remove_entity

    with _entities(data_dir) as (session, settings):
        entity = remove_entity(session, ae_title)
        commands.application_entity_changed(session, settings, entity.ae_title, entity.organisation_oid,
                                            entity.host, "removed")
    click.echo(f"removed AE title {entity.ae_title} ({entity.organisation_name})")


@click.group("dimse")
def dimse() -> None:
    """The DICOM listener (C-STORE, C-ECHO)."""


@dimse.command("serve")
@DATA_DIR
@click.option("--host", default=None, help="address to bind (default: host from hub.toml)")
@click.option("--port", type=int, default=None, help="port (default: dimse_port from hub.toml)")
def dimse_serve(data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Run the C-STORE / C-ECHO SCP in the foreground until SIGTERM or SIGINT."""
    import logging
    import signal
    import ssl
    import threading
    from dataclasses import replace

    from hub.db import Database
    from hub.logs import configure_logging
    from repository.blobstore import open_blob_store
    from repository.dimse.scp import start

    settings = initialised_settings(data_dir)
    settings = replace(settings, host=host or settings.host,
                       dimse_port=settings.dimse_port if port is None else port)
    if settings.dimse_port == 0:
        raise fail("dimse_port is 0 in hub.toml (or XDSHUB_DIMSE_PORT): DIMSE is off; pass --port")
    configure_logging(settings.log_level)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)   # its INFO is a per-PDU narrative
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    database = Database(settings.database_url)
    try:
        listener = start(settings, database, open_blob_store(settings.storage_url))
    except (OSError, ssl.SSLError) as exc:
        database.dispose()
        raise fail(f"cannot listen on {settings.host}:{settings.dimse_port}: {exc}") from exc
    try:
        stop.wait()
    finally:
        listener.stop()
        database.dispose()
