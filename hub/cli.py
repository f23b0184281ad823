"""The `xdshub` command: init, org add, serve, demo (import, manifest and storage gc in `hub.cli_repository`).

User errors (a missing data dir, a duplicate organisation, a bad certificate
file) print one line on stderr and exit with status 1, without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hub.organisations import BUNDLE_FILES
from hub.settings import DEFAULT_DATA_DIR, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=f"data folder with hub.toml, database and PKI (default: $XDSHUB_DATA_DIR or ./{DEFAULT_DATA_DIR})")


def fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def slug(name: str) -> str:
    """A folder name for an organisation: lower case, words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "organisation"


def database_errors() -> tuple[type[Exception], ...]:
    """What a database or migration failure raises (SQLAlchemy and its drivers, Alembic)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError, CommandError


def database_failure(exc: Exception) -> click.ClickException:
    """A database or migration error as one line, without the traceback."""
    from sqlalchemy.exc import IntegrityError

    if isinstance(exc, IntegrityError):
        return fail("the organisation, its OID or its certificate was registered meanwhile")
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    return fail(f"database error: {first} (is the database reachable, and was `xdshub init` run?)")


def remove_bundle(folder: Path) -> None:
    """Remove the files `write_bundle` writes (the folder stays if anything else is in it)."""
    for name in BUNDLE_FILES:
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def initialised_settings(data_dir: Path | None) -> Settings:
    settings = load_settings(data_dir)
    if not settings.toml_path.exists():
        raise fail(f"{settings.data_dir} is not an xdshub data dir (no hub.toml); run `xdshub init` first")
    return settings


@contextmanager
def command_session(data_dir: Path | None, refusals: tuple[type[Exception], ...],
                    conflict: str) -> Iterator[tuple[Session, Settings]]:
    """A session on the hub's database for one command, committed at the end.

    `refusals` (the command's own errors) become their message on one line,
    a unique-constraint failure becomes `conflict`, other database errors one
    line too; the database is disposed of either way.
    """
    from sqlalchemy.exc import IntegrityError

    from hub.db import Database

    settings = initialised_settings(data_dir)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            yield session, settings
    except refusals as exc:
        raise fail(str(exc)) from exc
    except IntegrityError as exc:
        raise fail(conflict) from exc
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """xdshub: a cross-enterprise medical image sharing hub (IHE XDS.b / XDS-I.b)."""


@main.command()
@DATA_DIR
def init(data_dir: Path | None) -> None:
    """Create (or complete) the database, development PKI and hub.toml."""
    from hub.security.pki import PkiError
    from hub.setup import initialise

    target = data_dir or load_settings(None).data_dir
    try:
        settings = initialise(target)
    except (PkiError, OSError) as exc:
        raise fail(f"cannot initialise {target}: {exc}") from exc
    except database_errors() as exc:
        raise database_failure(exc) from exc
    click.echo(f"xdshub data dir ready: {settings.data_dir}")
    click.echo(f"  settings:   {settings.toml_path}")
    click.echo(f"  hub CA:     {settings.path(settings.ca_cert)}")
    click.echo(f"  server:     {settings.path(settings.server_cert)} (localhost, 127.0.0.1, ::1)")
    click.echo(f"  base URL:   {settings.base_url}")


@main.group()
def org() -> None:
    """Provider organisations."""


@org.command("add")
@click.argument("name")
@click.option("--oid", required=True, help="the organisation's OID (e.g. 1.2.3.4)")
@DATA_DIR
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for the client bundle (default: DATA_DIR/orgs/<name>)")
@click.option("--scopes", default=None,
              help='space separated scopes (default: the standard set; "audit:read" only when asked)')
@click.option("--cert", "cert_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="register this externally issued client certificate (PEM) instead of issuing one")
def org_add(name: str, oid: str, data_dir: Path | None, out: Path | None, scopes: str | None,
            cert_file: Path | None) -> None:
    """Register organisation NAME and write its client bundle."""
    from hub.db import Database
    from hub.organisations import OrganisationError, write_bundle
    from hub.organisations import add_organisation as register
    from hub.security.pki import PkiError

    settings = initialised_settings(data_dir)
    certificate = None
    if cert_file is not None:
        try:
            certificate = cert_file.read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {cert_file}: {exc.strerror}") from exc
    folder = out or settings.data_dir / "orgs" / slug(name)
    database: Database | None = None
    written = False
    try:
        database = Database(settings.database_url)
        with database.session() as session:
            new = register(session, settings, name, oid, scopes, certificate)
            from hub.audit import commands

            commands.organisation_registered(session, settings, new.oid, new.name, " ".join(new.scopes))
            if (folder / "client.json").exists():
                raise fail(f"{folder} already holds a client bundle; choose another --out")
            # Written inside the transaction: no organisation without its bundle; and
            # when the commit fails, the bundle is removed again (below).
            written = True
            write_bundle(folder, settings, new)
    except (OrganisationError, PkiError) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        if written:
            remove_bundle(folder)
        raise fail(f"cannot write the bundle to {folder}: {exc.strerror or exc}") from exc
    except database_errors() as exc:
        if written:
            remove_bundle(folder)
        raise database_failure(exc) from exc
    finally:
        if database is not None:
            database.dispose()
    click.echo(f"registered {new.name} ({new.oid}), scopes: {' '.join(new.scopes)}")
    click.echo(f"client bundle: {folder}")
    if new.key_pem is None:
        click.echo("  (external certificate: client.key is the key you already hold)")


@main.command()
@DATA_DIR
@click.option("--host", default=None, help="address to bind (default from hub.toml)")
@click.option("--port", type=int, default=None, help="HTTPS port (default from hub.toml)")
def serve(data_dir: Path | None, host: str | None, port: int | None) -> None:
    """Serve the hub over HTTPS (gunicorn), client certificates requested."""
    import ssl

    from hub.server import serve as run

    settings = initialised_settings(data_dir)
    try:
        run(settings, host=host, port=port)
    except (FileNotFoundError, ssl.SSLError) as exc:
        raise fail(str(exc)) from exc


@main.command()
@DATA_DIR
@click.option("--port", type=int, default=None, help="HTTPS port (default 8443)")
def demo(data_dir: Path | None, port: int | None) -> None:
    """Initialise, register two demo organisations, seed studies and serve."""
    from hub.demo import run_demo

    run_demo(data_dir, port)


def _register_repository_commands() -> None:
    from hub.cli_repository import import_files, manifest, storage

    main.add_command(import_files)
    main.add_command(manifest)
    main.add_command(storage)

    from hub.cli_audit import audit

    main.add_command(audit)

    from hub.cli_users import user

    main.add_command(user)

    from hub.cli_dimse import ae, dimse

    main.add_command(ae)
    main.add_command(dimse)

    from hub.cli_publish import publish

    main.add_command(publish)

    from hub.cli_patients import patient

    main.add_command(patient)

    from hub.cli_peers import peer

    main.add_command(peer)


_register_repository_commands()
