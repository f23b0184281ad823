"""`xdshub import` and `xdshub manifest`: the repository's command-line entry points.

`import` takes DICOM Part 10 files, folders, ZIP archives and DICOMDIRs
(`repository.import_sources`) into the hub as the named organisation, through
the same ingest service every other entry uses; with `--patient-id` (and the
other capture options) JPEG, PNG, PDF and MP4 files become DICOM captures
(`repository.capture`), else they are skipped with the reason. It ends with a
summary: imported, already held, skipped (reasons counted), refused (each named).
`manifest` builds the XDS-I.b manifest (KOS) of a study the hub holds,
writes it to a file and/or publishes it with RAD-68 to the configured
registry (this hub's own, or `registry_url` in hub.toml).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from hub.cli import DATA_DIR, database_errors, database_failure, fail, initialised_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub.db import Database
    from hub.settings import Settings
    from repository.blobstore import BlobStore
    from repository.capture import CaptureMetadata
    from repository.import_sources import Item, Rejected
    from repository.ingest import Ingested, Sender


CAPTURE_OPTIONS = (("--patient-id", "patient_id"), ("--patient-name", "patient_name"),
                   ("--birth-date", "birth_date"), ("--accession", "accession"), ("--body-part", "body_part"),
                   ("--device", "device"), ("--department", "department"))
REFUSALS_LISTED = 50


@dataclass
class ImportSummary:
    """What an import did, for the summary at its end."""

    imported: int = 0
    duplicates: int = 0
    studies: set[str] = field(default_factory=set)
    skipped: Counter[str] = field(default_factory=Counter)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"imported: {self.imported} instance(s) in {len(self.studies)} study(ies)",
               f"already held: {self.duplicates}",
               f"skipped: {sum(self.skipped.values())}"]
        out += [f"  {count:>5}  {reason}" for reason, count in self.skipped.most_common()]
        out.append(f"refused: {len(self.refused)}")
        out += [f"  {label}: {reason}" for label, reason in self.refused[:REFUSALS_LISTED]]
        if len(self.refused) > REFUSALS_LISTED:
            out.append(f"  ... and {len(self.refused) - REFUSALS_LISTED} more")
        return out


def _capture_options(command: Callable[..., None]) -> Callable[..., None]:
    for flag, name in reversed(CAPTURE_OPTIONS):
        command = click.option(flag, name, default=None,
                               help=f"capture non-DICOM files (JPEG, PNG, PDF, MP4) with this {name.replace('_', ' ')}"
                               if name == "patient_id" else f"{name.replace('_', ' ')} of the captures")(command)
    return command


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--org", "org_oid", required=True, help="OID of the registered organisation sending the images")
@_capture_options
@click.option("--progress/--no-progress", default=None,
              help="progress bar on stderr (default: when stderr is a terminal)")
@click.option("-v", "--verbose", is_flag=True, help="one line per file as it is done")
@DATA_DIR
def import_files(paths: tuple[Path, ...], org_oid: str, progress: bool | None, verbose: bool,
                 data_dir: Path | None, **capture_fields: str | None) -> None:
    """Store DICOM files, folders, ZIP archives and DICOMDIRs in the hub, and with --patient-id wrap JPEG, PNG,
    PDF and MP4 files into DICOM captures; a summary at the end, exit 1 when all that was offered was refused."""
    from sqlalchemy import select

    from hub.db import Database
    from hub.tables import Organisation
    from repository.blobstore import open_blob_store
    from repository.capture import CaptureError, parse_metadata
    from repository.import_sources import collect
    from repository.ingest import Sender

    given = {name: value for name, value in capture_fields.items() if value is not None}
    if given and "patient_id" not in given:
        raise fail("capture options need --patient-id (the patient the non-DICOM files show)")
    try:
        metadata = parse_metadata(given) if given else None
    except CaptureError as exc:
        raise fail(str(exc)) from None
    settings = initialised_settings(data_dir)
    database, store = Database(settings.database_url), open_blob_store(settings.storage_url)
    summary = ImportSummary()
    try:
        with database.session() as session:
            organisation = session.scalar(select(Organisation).where(Organisation.oid == org_oid))
            if organisation is None:
                raise fail(f"no organisation with OID {org_oid} is registered (xdshub org add)")
            job = _ImportJob(database, store, settings, Sender(organisation.id, organisation.oid),
                             organisation.name, metadata, summary, verbose)
        entries = collect(paths)
        show = progress if progress is not None else sys.stderr.isatty()
        if show:
            with click.progressbar(entries, label=f"importing {len(entries)} item(s)", file=sys.stderr,
                                   show_pos=True, item_show_func=lambda e: e.label[-40:] if e else None) as bar:
                for entry in bar:
                    job.handle(entry)
        else:
            for entry in entries:
                job.handle(entry)
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()
    for line in summary.lines():
        click.echo(line)
    if summary.refused and not summary.imported:
        raise SystemExit(1)


class _ImportJob:
    """Each item in its own transaction: ingested as DICOM, captured, skipped or refused."""

    def __init__(self, database: Database, store: BlobStore, settings: Settings, sender: Sender,
                 organisation_name: str, metadata: CaptureMetadata | None, summary: ImportSummary,
                 verbose: bool) -> None:
        from hub.audit.events import Party

        self.database, self.store, self.settings, self.sender = database, store, settings, sender
        self.party = Party(user_id=sender.organisation_oid, name=organisation_name)
        self.metadata, self.summary, self.verbose = metadata, summary, verbose

    def say(self, message: str) -> None:
        if self.verbose:
            click.echo(message)

    def rejected(self, label: str, reason: str, refused: bool = True) -> None:
        if refused:
            self.summary.refused.append((label, reason))
        else:
            self.summary.skipped[reason] += 1
        self.say(f"{'refused' if refused else 'skipped'} {label}: {reason}")

    def handle(self, entry: Item | Rejected) -> None:
        from repository.import_sources import Rejected

        if isinstance(entry, Rejected):
            self.rejected(entry.label, entry.reason, entry.refused)
        else:
            self.run(entry)

    def run(self, item: Item) -> None:
        import zipfile

        from repository.capture_media import CaptureError
        from repository.dicomfile import InvalidDicom

        try:
            with item.open() as stream:
                head = stream.read(132)
                stream.seek(0)
                self._one(item, stream, head)
        except (InvalidDicom, CaptureError) as exc:
            self.rejected(item.label, str(exc))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            self.rejected(item.label, f"cannot be read: {exc}")

    def _one(self, item: Item, stream: BinaryIO, head: bytes) -> None:
        from repository.capture import capture
        from repository.capture_media import EXTENSIONS, is_dicom, sniff
        from repository.import_sources import ZIP_SIGNATURES
        from repository.ingest import ingest

        suffix = Path(item.name).suffix.lower()
        if is_dicom(head):
            with self.database.session() as session:
                result = ingest(session, self.store, stream, self.sender)
                self._done(session, item, result, "")
            return
        if head[:4] in ZIP_SIGNATURES:
            self.rejected(item.label, "ZIP archive inside an archive (not expanded)", refused=False)
            return
        kind = EXTENSIONS.get(suffix) or sniff(head)
        if kind is None:
            self.rejected(item.label, "not DICOM (no DICM prefix, PS3.10 7.1), nor JPEG, PNG, PDF or MP4",
                          refused=False)
            return
        if self.metadata is None:
            self.rejected(item.label, f"{kind.label} file: capture needs --patient-id", refused=False)
            return
        with self.database.session() as session:
            captured = capture(session, self.store, stream, self.metadata, self.sender,
                               filename=item.name if suffix in EXTENSIONS else None,
                               spool_dir=self.settings.data_dir / "spool", title=Path(item.name).stem)
            self._done(session, item, captured.ingested, f" ({kind.label} capture)")

    def _done(self, session: Session, item: Item, result: Ingested, what: str) -> None:
        from hub.audit import commands

        instance = result.instance
        if result.duplicate:
            self.summary.duplicates += 1
            self.say(f"already held {item.label}: instance {instance.sop_instance_uid}")
            return
        commands.instance_imported(session, self.settings, self.party, instance)
        self.summary.imported += 1
        self.summary.studies.add(instance.study_instance_uid)
        self.say(f"imported {item.label}{what}: study {instance.study_instance_uid}")


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
