"""`xdshub user add|list|unlock|passwd|remove`: console accounts (roles compliance, admin, clinician).

A password comes from `--password-file F` (its first line; `-` reads standard
input) or is asked for twice at the terminal; it is never a command-line
argument, where other users of the host could read it. Every change is
recorded in the audit trail with the operator who made it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy.orm import Session

from hub.cli import DATA_DIR, command_session, fail
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.console.tables import ConsoleUser

PASSWORD_FILE = click.option(
    "--password-file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
    help="read the password from the first line of this file ('-': standard input) instead of asking")


@click.group("user")
def user() -> None:
    """Console accounts."""


def _password(password_file: Path | None) -> str:
    if password_file is None:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        with click.open_file(str(password_file), encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the password from {password_file}: {getattr(exc, 'strerror', None) or exc}") \
            from exc
    return (text.splitlines() or [""])[0]


@contextmanager
def _accounts(data_dir: Path | None) -> Iterator[tuple[Session, Settings]]:
    """A session on the hub's database, committed at the end; AccountError and database errors as one line."""
    from hub.console.accounts import AccountError

    with command_session(data_dir, (AccountError,), "that console account was created meanwhile") as opened:
        yield opened


def _existing(session: Session, name: str) -> ConsoleUser:
    from hub.console.accounts import find_user

    account = find_user(session, name)
    if account is None:
        raise fail(f"no console account {name!r}")
    return account


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["compliance", "admin", "clinician"]),
              help="compliance and admin open the audit console; clinician opens images (IHE IID)")
@click.option("--org", "organisation_oid", default=None, metavar="OID",
              help="a clinician's organisation: the clinician sees the studies it may see (required for clinician)")
@PASSWORD_FILE
@DATA_DIR
def add(name: str, role: str, organisation_oid: str | None, password_file: Path | None, data_dir: Path | None) -> None:
    """Create console account NAME with ROLE."""
    from sqlalchemy import select

    from hub.audit import commands
    from hub.console.accounts import add_user
    from hub.tables import Organisation

    if (role == "clinician") != (organisation_oid is not None):
        raise fail("--org OID is required for a clinician, and only for a clinician")
    password = _password(password_file)
    with _accounts(data_dir) as (session, settings):
        organisation = None
        if organisation_oid is not None:
            organisation = session.scalar(select(Organisation).where(Organisation.oid == organisation_oid))
            if organisation is None:
                raise fail(f"no organisation {organisation_oid}; see `xdshub org list`")
        account = add_user(session, name, role, password)
        account.organisation_id = organisation.id if organisation is not None else None
        commands.account_changed(session, settings, account.name, account.role, "created")
    click.echo(f"console account {account.name} created with role {account.role}")


@user.command("list")
@DATA_DIR
def list_users(data_dir: Path | None) -> None:
    """The console accounts, their roles and whether they are locked."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from hub.console.accounts import is_locked
    from hub.console.tables import ConsoleUser

    now = datetime.now(UTC)
    with _accounts(data_dir) as (session, _settings):
        rows = [(u.name, u.role, "locked" if is_locked(u, now) else "disabled" if u.disabled else "active",
                 u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never")
                for u in session.scalars(select(ConsoleUser).order_by(ConsoleUser.name))]
    if not rows:
        click.echo("no console accounts; create one with `xdshub user add NAME --role compliance`")
    for name, role, state, last in rows:
        click.echo(f"{name}\t{role}\t{state}\tlast login {last}")


@user.command("unlock")
@click.argument("name")
@DATA_DIR
def unlock_user(name: str, data_dir: Path | None) -> None:
    """Lift the lockout of account NAME after repeated failed logins."""
    from hub.audit import commands
    from hub.console.accounts import unlock

    with _accounts(data_dir) as (session, settings):
        account = _existing(session, name)
        unlock(account)
        commands.account_changed(session, settings, account.name, account.role, "unlocked")
    click.echo(f"console account {account.name} unlocked")


@user.command("passwd")
@click.argument("name")
@PASSWORD_FILE
@DATA_DIR
def change_password(name: str, password_file: Path | None, data_dir: Path | None) -> None:
    """Give account NAME a new password; its sessions end."""
    from hub.audit import commands
    from hub.console.accounts import set_password
    from hub.console.sessions import end_all

    password = _password(password_file)
    with _accounts(data_dir) as (session, settings):
        account = _existing(session, name)
        set_password(account, password)
        end_all(session, account)
        commands.account_changed(session, settings, account.name, account.role, "given a new password")
    click.echo(f"console account {account.name} has a new password; its sessions were ended")


@user.command("remove")
@click.argument("name")
@DATA_DIR
def remove(name: str, data_dir: Path | None) -> None:
    """Disable account NAME: it can no longer log in and its sessions end (the audit trail keeps its name)."""
    from hub.audit import commands
    from hub.console.sessions import end_all

    with _accounts(data_dir) as (session, settings):
        account = _existing(session, name)
        account.disabled = True
        end_all(session, account)
        commands.account_changed(session, settings, account.name, account.role, "removed")
    click.echo(f"console account {account.name} disabled")
