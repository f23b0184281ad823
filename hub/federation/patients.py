"""Patient identity in the affinity domain: organisations' local ids linked to domain ids.

Each organisation names a patient by its own id (an XDS CX `ID^^^&OID&ISO`
with its own assigning authority). `link_patient` records that local id X at
organisation A is the affinity domain id P (what an ITI-8/ITI-44 Patient
Identity Feed would tell the registry, ITI TF-1 10.2.1). From then on

- `to_domain` turns A's X into P: the registry translates the patientId of
  every SubmissionSet, DocumentEntry and Folder A submits (ITI-42, and ITI-41
  / RAD-68 through the same registration; sourcePatientId keeps X), and the
  patient parameters of A's stored queries (ITI-18), so a query for P, or for
  any local id linked to P, finds every provider's entries of that patient;
- entries A registered under X before the link are re-homed to P when the
  link is made, so the registry never holds one patient under two ids.

"Known" (`is_known`, `require_known`): with `affinity_domain_oid` empty (the
default) the domain is open and every well-formed id is accepted, as before.
When it is set, a patient id of a submission or query, after translation, must
have that assigning authority and be the domain id of some link or already
have entries in the registry; otherwise XDSUnknownPatientId
(ITI TF-3 Table 4.2.4.1-2; ITI TF-2b 3.42.4.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as replaced
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import UnknownPatientId
from hub.federation.tables import PatientLink
from hub.settings import Settings
from registry.model import ExternalIdentifier, SubmitObjectsRequest
from registry.tables import RegistryObjectRow
from registry.validation import check_patient_id
from registry.vocabulary import DocumentEntryScheme, FolderScheme, SubmissionSetScheme

MAX_ID_LENGTH = 256     # the width of patient_links.local_id / domain_id and registry_objects.patient_id
# The external identifiers that carry the patient of an entry (ITI TF-3 4.2.3.2.16, 4.2.3.3.7, 4.2.3.4.4).
PATIENT_SCHEMES = frozenset({DocumentEntryScheme.PATIENT_ID.value, SubmissionSetScheme.PATIENT_ID.value,
                             FolderScheme.PATIENT_ID.value})


class PatientLinkError(ValueError):
    """A link that cannot be made: an id not in CX form, or not of the affinity domain."""


class PatientLinkConflict(PatientLinkError):
    """A link that contradicts one already recorded (the local id is linked to another domain id, ...)."""


@dataclass(frozen=True)
class LinkResult:
    link: PatientLink
    created: bool           # False: the same link was already recorded (nothing changed)
    rehomed: int = 0        # registry entries moved from the local id to the domain id


def assigning_authority(patient_id: str) -> str:
    """The OID of a CX `ID^^^&OID&ISO` ("" when it has none)."""
    parts = patient_id.split("&")
    return parts[1] if len(parts) == 3 else ""


def check_cx(what: str, value: object) -> str:
    """`value` if it is a patient id `ID^^^&OID&ISO` with an OID and type ISO, else PatientLinkError."""
    if not isinstance(value, str) or not value:
        raise PatientLinkError(f"{what} is required: a patient id ID^^^&OID&ISO")
    if len(value) > MAX_ID_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PatientLinkError(f"{what} must be at most {MAX_ID_LENGTH} printable characters")
    problem = check_patient_id(value)
    if problem is not None:
        raise PatientLinkError(f"{what} {value[:80]!r} is not a patient id ID^^^&OID&ISO "
                               f"(assigning authority an OID, type ISO): {problem[:120]}")
    return value


def find_link(session: Session, organisation_id: int, local_id: str) -> PatientLink | None:
    return session.scalar(select(PatientLink).where(PatientLink.organisation_id == organisation_id,
                                                    PatientLink.local_id == local_id).limit(1))


def links_of(session: Session, organisation_id: int, local_id: str | None = None) -> list[PatientLink]:
    """An organisation's links (only that of `local_id` when given), oldest first."""
    statement = select(PatientLink).where(PatientLink.organisation_id == organisation_id)
    if local_id is not None:
        statement = statement.where(PatientLink.local_id == local_id)
    return list(session.scalars(statement.order_by(PatientLink.id)))


def link_patient(session: Session, organisation_id: int, local_id: str, domain_id: str, *,
                 affinity_domain_oid: str = "", now: datetime | None = None) -> LinkResult:
    """Record that `local_id` at the organisation is `domain_id` (the caller commits).

    The same link again changes nothing (`created` False). Linking the local id
    to another domain id, using a domain id as a local id, or linking to an id
    that is itself one of the organisation's linked local ids is a
    PatientLinkConflict. With `affinity_domain_oid` set the domain id must have
    that assigning authority. A local id equal to the domain id records that
    the organisation uses the domain id itself (it makes the id known).
    """
    local_id, domain_id = check_cx("local_id", local_id), check_cx("domain_id", domain_id)
    if affinity_domain_oid and assigning_authority(domain_id) != affinity_domain_oid:
        raise PatientLinkError(f"domain_id {domain_id!r} is not an id of the affinity domain: its assigning "
                               f"authority must be {affinity_domain_oid}")
    existing = find_link(session, organisation_id, local_id)
    if existing is not None:
        if existing.domain_id != domain_id:
            raise PatientLinkConflict(f"local id {local_id!r} is already linked to {existing.domain_id!r}; "
                                      "a local id names one patient of the affinity domain")
        return LinkResult(existing, created=False)
    if local_id != domain_id:
        if affinity_domain_oid and assigning_authority(local_id) == affinity_domain_oid:
            raise PatientLinkConflict(f"local id {local_id!r} has the affinity domain's assigning authority: it is "
                                      "a domain id, not a local one")
        if session.scalar(select(PatientLink.id).where(PatientLink.domain_id == local_id).limit(1)) is not None:
            raise PatientLinkConflict(f"{local_id!r} is an affinity domain id (linked by an organisation), "
                                      "not a local id")
    chained = find_link(session, organisation_id, domain_id)
    if chained is not None and chained.domain_id != domain_id:
        raise PatientLinkConflict(f"{domain_id!r} is a local id of this organisation, linked to "
                                  f"{chained.domain_id!r}; link to that domain id instead")
    link = PatientLink(organisation_id=organisation_id, local_id=local_id, domain_id=domain_id,
                       created_at=(now or datetime.now(UTC)).astimezone(UTC))
    session.add(link)
    session.flush()   # a concurrent identical link fails here, on the unique (organisation_id, local_id)
    rehomed = _rehome_entries(session, organisation_id, local_id, domain_id) if local_id != domain_id else 0
    return LinkResult(link, created=True, rehomed=rehomed)


def _rehome_entries(session: Session, organisation_id: int, local_id: str, domain_id: str) -> int:
    """Move the organisation's registry entries of `local_id` to `domain_id` (a patient id merge).

    Entries registered before the link keep answering queries for the
    patient, and later submissions about them (a replacement, a folder
    membership) pass the same-patient check (ITI TF-2b 3.42.4.1.3.3).
    """
    rows = session.scalars(select(RegistryObjectRow).where(
        RegistryObjectRow.patient_id == local_id, RegistryObjectRow.submitter_org_id == organisation_id)
        .with_for_update()).all()
    for row in rows:
        content = dict(row.content)
        content["external_identifiers"] = [
            {**ident, "value": domain_id} if ident.get("scheme") in PATIENT_SCHEMES and ident.get("value") == local_id
            else ident for ident in content.get("external_identifiers", [])]
        row.content = content      # a new dict: the JSON column sees the change
        row.patient_id = domain_id
    session.flush()
    return len(rows)


def to_domain(session: Session, organisation_id: int | None, patient_id: str) -> str:
    """The domain id the organisation's `patient_id` is linked to, else `patient_id` unchanged."""
    link = find_link(session, organisation_id, patient_id) if organisation_id is not None else None
    return link.domain_id if link is not None else patient_id


def is_known(session: Session, patient_id: str, settings: Settings) -> bool:
    """Whether the affinity domain knows `patient_id` (always, when `affinity_domain_oid` is empty)."""
    if not settings.affinity_domain_oid:
        return True
    if assigning_authority(patient_id) != settings.affinity_domain_oid:
        return False
    if session.scalar(select(PatientLink.id).where(PatientLink.domain_id == patient_id).limit(1)) is not None:
        return True
    return session.scalar(select(RegistryObjectRow.id).where(RegistryObjectRow.patient_id == patient_id)
                          .limit(1)) is not None


def require_known(session: Session, patient_id: str, settings: Settings, location: str) -> None:
    """XDSUnknownPatientId unless `is_known` (ITI TF-3 Table 4.2.4.1-2)."""
    if not is_known(session, patient_id, settings):
        raise UnknownPatientId(f"patient id {patient_id} is not known in the affinity domain "
                               f"{settings.affinity_domain_oid} (no link names it and the registry holds nothing "
                               "for it)", location)


def resolve(session: Session, organisation_id: int | None, patient_id: str, settings: Settings,
            location: str) -> str:
    """`to_domain`, then `require_known`: the id the registry stores and matches."""
    domain_id = to_domain(session, organisation_id, patient_id)
    require_known(session, domain_id, settings, location)
    return domain_id


def translate_submission(session: Session, submission: SubmitObjectsRequest, organisation_id: int | None,
                         settings: Settings) -> None:
    """Give the SubmissionSet, DocumentEntries and Folders of `submission` their domain patient id.

    Only the patientId external identifiers change (each object gets a new
    list, so identifiers shared with the caller's request stay as they were);
    sourcePatientId keeps the local id. Raises XDSUnknownPatientId for a
    patient the affinity domain does not know.
    """
    resolved: dict[str, str] = {}
    for obj in submission.objects:
        if not any(i.scheme in PATIENT_SCHEMES for i in obj.external_identifiers):
            continue
        identifiers: list[ExternalIdentifier] = []
        for ident in obj.external_identifiers:
            if ident.scheme in PATIENT_SCHEMES:
                if ident.value not in resolved:
                    resolved[ident.value] = resolve(session, organisation_id, ident.value, settings, obj.id)
                ident = replaced(ident, value=resolved[ident.value])
            identifiers.append(ident)
        obj.external_identifiers = identifiers
