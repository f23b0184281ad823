"""The quiet-period publisher: a study's manifest is registered once its images stop arriving.

A study is due when its last new instance is at least `publish_quiet_seconds`
old and newer than what its registered manifest covers (`study_states`,
written by ingest and by every publication). Each due study is published
(RAD-68 through `publish_if_stale`) in a transaction of its own; a later
manifest replaces the earlier one (RPLC). Everything lives in the database:
after a restart the publisher takes up exactly what is still due, and the
row lock plus the "already current" check under it mean a study is never
published twice for the same content, even by two publishers at once.

A failed publication (registry down, registry refusal) is recorded on the
study; it is tried again after a back-off that doubles with each failure,
from the quiet period up to an hour, and the error is logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.db import Database
from hub.settings import Settings
from repository.blobstore import BlobStore
from repository.publishing import PublishedManifest, publish_if_stale, record_failure
from repository.registration import Registry
from repository.tables import StudyState

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
BATCH = 100


@dataclass(frozen=True)
class Attempt:
    study_instance_uid: str
    published: PublishedManifest | None     # None: failed, or already current
    error: str = ""


def retry_after(failures: int, quiet: timedelta) -> timedelta:
    """How long after a failed attempt the study is tried again: the quiet period, doubled per failure."""
    if failures <= 0:
        return timedelta(0)
    return min(MAX_BACKOFF, max(quiet, timedelta(seconds=1)) * (2 ** min(failures - 1, 16)))


def due_studies(session: Session, quiet: timedelta, now: datetime | None = None, limit: int = BATCH) -> list[str]:
    """Studies quiet for `quiet` whose newest instance no registered manifest covers yet, oldest first."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(StudyState.study_instance_uid, StudyState.failures, StudyState.attempted_at)
        .where(StudyState.last_instance_at <= now - quiet,
               or_(StudyState.published_through.is_(None),
                   StudyState.last_instance_at > StudyState.published_through))
        .order_by(StudyState.last_instance_at).limit(limit))
    return [uid for uid, failures, attempted in rows
            if not failures or attempted is None or as_utc(attempted) + retry_after(failures, quiet) <= now]


def publish_due(database: Database, store: BlobStore, registry: Registry, settings: Settings,
                now: datetime | None = None) -> list[Attempt]:
    """Publish every due study once; what happened to each."""
    quiet = timedelta(seconds=settings.publish_quiet_seconds)
    with database.session() as session:
        due = due_studies(session, quiet, now)
    attempts = []
    for study_uid in due:
        session = database.new_session()
        try:
            published = publish_if_stale(session, store, registry, settings, study_uid)
            attempts.append(Attempt(study_uid, published))
            if published is not None:
                log.info("published manifest %s of study %s (%d instances%s)", published.unique_id, study_uid,
                         published.instance_count, f", replacing {published.replaced}" if published.replaced else "")
        except Exception as exc:   # one study's failure must not stop the others; it is recorded and retried
            session.rollback()
            log.warning("could not publish study %s: %s", study_uid, exc)
            with database.session() as failed:
                record_failure(failed, study_uid, str(exc) or type(exc).__name__)
            attempts.append(Attempt(study_uid, None, str(exc) or type(exc).__name__))
        finally:
            session.close()
    return attempts


def poll_interval(settings: Settings) -> float:
    """How often the publisher looks: a quarter of the quiet period, between 1 and 30 seconds."""
    return min(30.0, max(1.0, settings.publish_quiet_seconds / 4))


def watch(database: Database, store: BlobStore, registry: Registry, settings: Settings,
          stop: threading.Event) -> None:
    """Publish due studies until `stop` is set (`xdshub publish --watch`)."""
    interval = poll_interval(settings)
    log.info("publishing studies after %d s without new instances (looking every %.0f s)",
             settings.publish_quiet_seconds, interval)
    while not stop.is_set():
        try:
            publish_due(database, store, registry, settings)
        except Exception:      # the database is down, say: log and look again later
            log.exception("the quiet-period publisher could not look for due studies")
        stop.wait(interval)
