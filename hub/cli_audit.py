"""`xdshub audit verify`: walk the audit chain; exit 0 when intact, 1 naming the first bad record."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli import DATA_DIR, database_errors, database_failure, fail, initialised_settings


@click.group("audit")
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@DATA_DIR
def verify(data_dir: Path | None) -> None:
    """Check every record's hash, the chain's order and the signed checkpoints."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from hub.audit.verify import verify_chain
    from hub.db import Database

    settings = initialised_settings(data_dir)
    key = load_pem_private_key(settings.path(settings.signing_key).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise fail("the signing key is not an EC key")
    database = Database(settings.database_url)
    session = database.new_session()
    try:
        result = verify_chain(session, key.public_key())
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        session.close()
        database.dispose()
    if result.problem is not None:
        click.echo(f"audit chain broken: {result.problem} ({result.records} records read)", err=True)
        raise SystemExit(1)
    click.echo(f"audit chain intact: {result.records} records, {result.checkpoints} signed checkpoints")
