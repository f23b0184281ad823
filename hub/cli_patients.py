"""`xdshub patient link|list`: an organisation's local patient ids linked to the affinity domain's.

The same rules as `POST /api/patients` (`hub.federation.patients`): ids in
the XDS form `ID^^^&OID&ISO`, a local id names one domain patient, linking
the same pair again changes nothing. Every new link is recorded in the
audit trail with the operator who made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hub.cli import DATA_DIR, command_session, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ORG = click.option("--org", "organisation_oid", required=True, metavar="OID",
                   help="the organisation whose local id it is (its OID, as in `xdshub org add --oid`)")


@click.group("patient")
def patient() -> None:
    """Patient identity: local ids of organisations linked to affinity domain ids."""


def _organisation_id(session: Session, oid: str) -> int:
    from sqlalchemy import select

    from hub.tables import Organisation

    organisation_id = session.scalar(select(Organisation.id).where(Organisation.oid == oid))
    if organisation_id is None:
        raise fail(f"no organisation {oid}; see `xdshub org add`")
    return int(organisation_id)


@patient.command("link")
@click.argument("local_id", metavar="LOCAL")
@click.argument("domain_id", metavar="DOMAIN")
@ORG
@DATA_DIR
def link(local_id: str, domain_id: str, organisation_oid: str, data_dir: Path | None) -> None:
    """Record that patient LOCAL at the organisation is DOMAIN in the affinity domain (both ID^^^&OID&ISO)."""
    from hub.audit import commands
    from hub.federation.patients import PatientLinkError, link_patient

    with command_session(data_dir, (PatientLinkError,), "that local id was linked meanwhile") as (session, settings):
        made = link_patient(session, _organisation_id(session, organisation_oid), local_id, domain_id,
                            affinity_domain_oid=settings.affinity_domain_oid)
        if made.created:
            commands.patient_linked(session, settings, organisation_oid, local_id, domain_id, made.rehomed)
    if not made.created:
        click.echo(f"{local_id} at {organisation_oid} was already linked to {domain_id}")
        return
    moved = f"; {made.rehomed} registry entries moved to the domain id" if made.rehomed else ""
    click.echo(f"{local_id} at {organisation_oid} linked to {domain_id}{moved}")


@patient.command("list")
@ORG
@DATA_DIR
def list_links(organisation_oid: str, data_dir: Path | None) -> None:
    """The organisation's linked local ids, one `LOCAL<tab>DOMAIN` a line."""
    from hub.federation.patients import links_of

    with command_session(data_dir, (), "") as (session, _settings):
        rows = [(link.local_id, link.domain_id) for link in links_of(session, _organisation_id(session,
                                                                                                organisation_oid))]
    if not rows:
        click.echo(f"no patient links for {organisation_oid}; add one with `xdshub patient link LOCAL DOMAIN "
                   f"--org {organisation_oid}`", err=True)
    for local_id, domain_id in rows:
        click.echo(f"{local_id}\t{domain_id}")
