"""`xdshub publish`: register study manifests (RAD-68) now, or keep doing it after each quiet period.

`xdshub publish STUDY_UID...` publishes (or re-publishes, replacing the
previous manifest) each study at once. `xdshub publish --watch` is the
quiet-period publisher `xdshub serve` runs beside the web server when
`publish_quiet_seconds` is not 0; `--once` publishes what is due and exits.
"""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli import DATA_DIR, database_errors, database_failure, fail, initialised_settings


@click.command("publish")
@click.argument("study_uids", nargs=-1)
@click.option("--watch", is_flag=True, help="publish each study once it has been quiet, until stopped")
@click.option("--once", is_flag=True, help="publish the studies due now, then exit")
@DATA_DIR
def publish(study_uids: tuple[str, ...], watch: bool, once: bool, data_dir: Path | None) -> None:
    """Publish the manifest (KOS, RAD-68) of each STUDY_UID now, or the due studies (--once, --watch)."""
    import logging
    import signal
    import threading

    from hub.db import Database
    from hub.errors import XdsError, XdsErrorList
    from hub.logs import configure_logging
    from repository import autopublish
    from repository.blobstore import open_blob_store
    from repository.publishing import InconsistentStudy, UnknownStudy, publish_study
    from repository.registration import registry_for

    if bool(study_uids) + watch + once != 1:
        raise fail("name the studies to publish, or give --watch or --once (one of the three)")
    settings = initialised_settings(data_dir)
    database, store, registry = Database(settings.database_url), open_blob_store(settings.storage_url), \
        registry_for(settings)
    failed = 0
    try:
        if watch:
            configure_logging(settings.log_level)
            if settings.publish_quiet_seconds <= 0:
                raise fail("publish_quiet_seconds is 0 in hub.toml: quiet-period publishing is off")
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            autopublish.watch(database, store, registry, settings, stop)
            return
        if once:
            logging.basicConfig(level=logging.WARNING)
            for attempt in autopublish.publish_due(database, store, registry, settings):
                if attempt.published is not None:
                    click.echo(f"published manifest {attempt.published.unique_id} of study "
                               f"{attempt.study_instance_uid}")
                elif attempt.error:
                    failed += 1
                    click.echo(f"study {attempt.study_instance_uid} not published: {attempt.error}", err=True)
        for study_uid in study_uids:
            session = database.new_session()
            try:
                published = publish_study(session, store, registry, settings, study_uid)
                replacing = f", replacing {published.replaced}" if published.replaced else ""
                click.echo(f"published manifest {published.unique_id} of study {study_uid} "
                           f"({published.instance_count} instances{replacing})")
            except (UnknownStudy, InconsistentStudy, XdsError, XdsErrorList) as exc:
                failed += 1
                click.echo(f"study {study_uid} not published: {exc}", err=True)
            finally:
                session.close()
    except database_errors() as exc:
        raise database_failure(exc) from exc
    finally:
        database.dispose()
    if failed:
        raise SystemExit(1)
