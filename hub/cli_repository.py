"""`xdshub import` and `xdshub manifest`: the repository's command-line entry points.

`import` takes DICOM Part 10 files (or folders of them) into the hub as the
named organisation, through the same ingest service every other entry uses.
`manifest` builds the XDS-I.b manifest (KOS) of a study the hub holds,
writes it to a file and/or publishes it with RAD-68 to the configured
registry (this hub's own, or `registry_url` in hub.toml).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from hub.cli import DATA_DIR, database_errors, database_failure, fail, initialised_settings


def _files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--org", "org_oid", required=True, help="OID of the registered organisation sending the images")
@DATA_DIR
def import_files(paths: tuple[Path, ...], org_oid: str, data_dir: Path | None) -> None:
    """Store DICOM files (or folders of them) in the hub; each bad file is named and skipped."""
    from sqlalchemy import select

    from hub.audit import commands
    from hub.audit.events import Party
    from hub.db import Database
    from hub.tables import Organisation
    from repository.blobstore import open_blob_store
    from repository.dicomfile import InvalidDicom
    from repository.ingest import Sender, ingest_instance

    settings = initialised_settings(data_dir)
    database, store = Database(settings.database_url), open_blob_store(settings.storage_url)
    stored = refused = 0
    try:
        with database.session() as session:
            organisation = session.scalar(select(Organisation).where(Organisation.oid == org_oid))
            if organisation is None:
                raise fail(f"no organisation with OID {org_oid} is registered (xdshub org add)")
            sender = Sender(organisation.id, organisation.oid)
            organisation_party = Party(user_id=organisation.oid, name=organisation.name)
        for path in _files(paths):
            try:
                with database.session() as session, path.open("rb") as stream:
                    instance = ingest_instance(session, store, stream, sender)
                    study = instance.study_instance_uid
                    commands.instance_imported(session, settings, organisation_party, instance)
                stored += 1
                click.echo(f"stored {path}: study {study}")
            except InvalidDicom as exc:
                refused += 1
                click.echo(f"refused {path}: {exc}", err=True)
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()
    click.echo(f"{stored} instance(s) stored, {refused} refused")
    if refused and not stored:
        raise SystemExit(1)


@click.command("manifest")
@click.argument("study_uid")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the KOS (DICOM Part 10) to this file")
@click.option("--publish", is_flag=True, help="Provide and Register it (RAD-68) with the configured registry")
@DATA_DIR
def manifest(study_uid: str, out: Path | None, publish: bool, data_dir: Path | None) -> None:
    """Build the XDS-I.b manifest (KOS) of a study this hub holds; write and/or publish it."""
    from hub.db import Database
    from hub.errors import XdsError, XdsErrorList
    from repository.blobstore import open_blob_store
    from repository.publishing import InconsistentStudy, UnknownStudy, manifest_bytes, publish_study, study_manifest
    from repository.registration import registry_for

    if not out and not publish:
        raise fail("say what to do with the manifest: --out FILE, --publish, or both")
    settings = initialised_settings(data_dir)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            dataset = study_manifest(session, study_uid, settings)
        if out:
            out.write_bytes(manifest_bytes(dataset))
            click.echo(f"manifest of study {study_uid}: {out} (SOP Instance UID {dataset.SOPInstanceUID})")
        if publish:
            session = database.new_session()
            try:
                published = publish_study(session, open_blob_store(settings.storage_url), registry_for(settings),
                                          settings, study_uid)
            finally:
                session.close()
            click.echo(f"published manifest {published.unique_id} of study {study_uid} "
                       f"({published.instance_count} instances, patient {published.patient_id})")
    except (UnknownStudy, InconsistentStudy) as exc:
        raise fail(str(exc)) from None
    except (XdsError, XdsErrorList) as exc:
        raise fail(f"the manifest was not published: {exc}") from None
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()


@click.group("storage")
def storage() -> None:
    """Blob storage maintenance."""


@storage.command("gc")
@click.option("--grace", type=float, default=3600.0, show_default=True,
              help="seconds a blob must be old before it may be collected (submissions in flight)")
@DATA_DIR
def storage_gc(grace: float, data_dir: Path | None) -> None:
    """Delete blobs no document or instance references (what a crash mid-submission leaves)."""
    from hub.db import Database
    from repository.blobstore import open_blob_store
    from repository.reclaim import collect_garbage

    settings = initialised_settings(data_dir)
    database = Database(settings.database_url)
    session = database.new_session()
    try:
        result = collect_garbage(session, open_blob_store(settings.storage_url), grace)
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        session.close()
        database.dispose()
    click.echo(f"examined {result.examined} blob(s) older than {grace:g}s: {len(result.deleted)} unreferenced "
               f"deleted, {result.temporary_removed} temporary file(s) removed")
