"""`xdshub audit verify`: walk the audit chain; exit 0 when intact, 1 naming the first bad record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hub.cli import DATA_DIR, database_errors, database_failure, fail, initialised_settings
from hub.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


@click.group("audit")
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@DATA_DIR
def verify(data_dir: Path | None) -> None:
    """Check every record's hash, the chain's order and the signed checkpoints."""
    from hub.audit.status import verify_and_remember
    from hub.db import Database

    settings = initialised_settings(data_dir)
    public_key = _public_key(settings)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            result = verify_and_remember(session, public_key)
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()
    if result.problem is not None:
        click.echo(f"audit chain broken: {result.problem} ({result.records} records read)", err=True)
        raise SystemExit(1)
    click.echo(f"audit chain intact: {result.records} records, {result.checkpoints} signed checkpoints")


def _public_key(settings: Settings) -> EllipticCurvePublicKey:
    from hub.audit.status import SigningKeyError, signing_public_key

    try:
        return signing_public_key(settings.path(settings.signing_key))
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc


@audit.command("archive")
@click.option("--before", required=True, help="archive the records older than this ISO 8601 date-time")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder of the archive files (default DIR/audit-archive)")
@DATA_DIR
def archive_records(before: str, out_dir: Path | None, data_dir: Path | None) -> None:
    """Move old records to an archive file; what remains still verifies."""
    from hub.audit import commands
    from hub.audit.retention import archive
    from hub.clock import parse_iso
    from hub.db import Database

    try:
        cutoff = parse_iso(before)
    except ValueError:
        raise fail(f"--before must be an ISO 8601 date-time, got {before!r}") from None
    settings = initialised_settings(data_dir)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            done = archive(session, cutoff, out_dir or settings.data_dir / "audit-archive",
                           settings.path(settings.signing_key))
            if done is not None:
                commands.audit_log_used(session, settings, f"file://{done.path}")
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()
    if done is None:
        click.echo(f"no audit record older than {cutoff.isoformat()} to archive")
    else:
        click.echo(f"archived records {done.first_seq}-{done.last_seq} to {done.path}")


@audit.command("verify-archive")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
def verify_archive_file(path: Path, data_dir: Path | None) -> None:
    """Walk an archive file's chain and checkpoints with the hub's key."""
    from hub.audit.retention import verify_archive

    settings = initialised_settings(data_dir)
    problem = verify_archive(path, _public_key(settings))
    if problem is not None:
        click.echo(f"audit archive broken: {problem}", err=True)
        raise SystemExit(1)
    click.echo(f"audit archive intact: {path.name}")


@audit.command("export")
@click.option("--once", is_flag=True, help="deliver what is pending to each collector, then exit")
@DATA_DIR
def export(once: bool, data_dir: Path | None) -> None:
    """Send the audit trail to the ATNA syslog collectors of hub.toml (RFC 5425), until stopped.

    `xdshub serve` starts this in its own process when collectors are configured.
    """
    import signal
    import threading

    from hub.audit.export import CollectorUnavailable, Exporter
    from hub.db import Database

    settings = initialised_settings(data_dir)
    if not settings.audit_collectors:
        raise fail("no audit_collectors in hub.toml: nothing to export to")
    database = Database(settings.database_url)
    exporter = Exporter(database, settings)
    try:
        if once:
            failed = False
            for collector in settings.audit_collectors:
                try:
                    click.echo(f"{collector}: {exporter.deliver(collector)} record(s) delivered")
                except CollectorUnavailable as exc:
                    click.echo(str(exc), err=True)
                    failed = True
            if failed:
                raise SystemExit(1)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        exporter.run(stop)
    finally:
        database.dispose()
