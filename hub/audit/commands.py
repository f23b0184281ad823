"""Audit records of work done outside HTTP requests: the xdshub command line and the demo.

Each is written in the database transaction of the work it records (the
caller commits). The hub side of these events is the command line itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from hub.audit import events
from hub.audit.events import Party
from hub.audit.message import Outcome
from hub.audit.record import record
from hub.settings import Settings
from repository.tables import DicomInstance


def _hub(settings: Settings, command: str) -> Party:
    return Party(user_id=f"{settings.base_url} (xdshub {command})", address=settings.host)


def organisation_registered(session: Session, settings: Settings, oid: str, name: str, scopes: str) -> None:
    """`xdshub org add`: an organisation given credentials and rights."""
    record(session, events.organisation_registered(
        hub=_hub(settings, "org add"), outcome=Outcome.SUCCESS, time=datetime.now(UTC),
        source_id=settings.base_url, organisation_oid=oid, organisation_name=name, scopes=scopes), settings)


def audit_log_used(session: Session, settings: Settings, what: str) -> None:
    """`xdshub audit archive`: the audit trail moved to a file."""
    record(session, events.audit_log_used(
        hub=_hub(settings, "audit"), outcome=Outcome.SUCCESS, time=datetime.now(UTC), source_id=settings.base_url,
        what=what), settings)


def instance_imported(session: Session, settings: Settings, sender: Party, instance: DicomInstance) -> None:
    """One DICOM instance taken in for `sender` (`xdshub import`, the demo)."""
    record(session, events.instances_imported(
        sender=sender, hub=_hub(settings, "import"), outcome=Outcome.SUCCESS, time=datetime.now(UTC),
        source_id=settings.base_url,
        studies=[(instance.study_instance_uid, [(instance.sop_class_uid, instance.sop_instance_uid)])],
        patient_id=instance.patient_id), settings)


def account_changed(session: Session, settings: Settings, account: str, role: str, change: str) -> None:
    """`xdshub user ...`: a console account created, unlocked, given a new password or removed."""
    record(session, events.account_changed(
        by=events.operator(), hub=_hub(settings, "user"), time=datetime.now(UTC), source_id=settings.base_url,
        account=account, role=role, change=change), settings)


def peer_changed(session: Session, settings: Settings, name: str, community: str, base_url: str,
                 change: str) -> None:
    """`xdshub peer add|remove`: another community federated with, or no longer."""
    record(session, events.peer_changed(
        hub=_hub(settings, "peer"), time=datetime.now(UTC), source_id=settings.base_url, name=name,
        community=community, base_url=base_url, change=change), settings)


def application_entity_changed(session: Session, settings: Settings, ae_title: str, organisation_oid: str,
                               host: str | None, change: str) -> None:
    """`xdshub ae add|remove`: a calling AE title registered to an organisation, or removed."""
    record(session, events.application_entity_changed(
        hub=_hub(settings, "ae"), time=datetime.now(UTC), source_id=settings.base_url, ae_title=ae_title,
        organisation_oid=organisation_oid, host=host, change=change), settings)


def patient_linked(session: Session, settings: Settings, organisation_oid: str, local_id: str, domain_id: str,
                   rehomed: int) -> None:
    """`xdshub patient link`: an organisation's local patient id linked to its affinity domain id."""
    record(session, events.patient_linked(
        by=events.operator(), hub=_hub(settings, "patient"), time=datetime.now(UTC), source_id=settings.base_url,
        organisation_oid=organisation_oid, local_id=local_id, domain_id=domain_id, rehomed=rehomed), settings)
