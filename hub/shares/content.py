"""What a share link shows: the instances of its study (and series) that the sharing organisation may see.

The sharing organisation's view is applied at every request (the rule of
`repository.visibility`), so a manifest withdrawn or a restriction added
after the link was made takes effect on it too. Everything else in the
study, and every other study, is answered as not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.uid import EncapsulatedPDFStorage
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.security.identity import Caller
from hub.shares.tables import ShareLink
from hub.tables import Organisation
from repository.dicomweb.wado import STUDY_ORDER
from repository.tables import DicomInstance
from repository.visibility import visible_clause

__all__ = ["IMAGE", "PDF", "VIDEO", "OTHER", "SharedStudy", "instance_kind", "organisation_view", "shared_study",
           "sharer"]

IMAGE, PDF, VIDEO, OTHER = "image", "pdf", "video", "other"
# MPEG-2, MPEG-4 AVC/H.264 and HEVC/H.265 transfer syntaxes (PS3.5 8.2.5 to 8.2.8)
VIDEO_SYNTAXES = frozenset({f"1.2.840.10008.1.2.4.{n}" for n in (100, 101, 102, 103, 104, 105, 106, 107, 108)})


def organisation_view(organisation: Organisation, client_id: str) -> Caller:
    """An organisation as the caller whose view of the hub's instances applies (`repository.visibility`)."""
    return Caller(organisation_id=organisation.id, organisation_oid=organisation.oid,
                  organisation_name=organisation.name, client_id=client_id, thumbprint="")


def sharer(session: Session, link: ShareLink) -> Caller:
    """The organisation that made the link, as the caller whose view of the study the link gives."""
    organisation = session.get(Organisation, link.organisation_id)
    assert organisation is not None, "share links are deleted with their organisation"
    return organisation_view(organisation, link.created_by)


def instance_kind(instance: DicomInstance) -> str:
    if instance.sop_class_uid == EncapsulatedPDFStorage:
        return PDF
    if instance.transfer_syntax_uid in VIDEO_SYNTAXES:
        return VIDEO
    if instance.rows:
        return IMAGE
    return OTHER


@dataclass(frozen=True)
class SharedStudy:
    link: ShareLink
    instances: list[DicomInstance]        # in series, then instance order

    @property
    def patient_id(self) -> str:
        return self.instances[0].patient_id if self.instances else ""

    def instance(self, sop_instance_uid: str) -> DicomInstance | None:
        return next((i for i in self.instances if i.sop_instance_uid == sop_instance_uid), None)

    def summary(self) -> dict[str, Any]:
        """The study as the viewer shows it (JSON)."""
        first = self.instances[0] if self.instances else None
        series: dict[str, dict[str, Any]] = {}
        for row in self.instances:
            entry = series.setdefault(row.series_instance_uid, {
                "uid": row.series_instance_uid, "number": row.series_number, "description": row.series_description,
                "modality": row.modality, "body_part": row.body_part_examined, "instances": []})
            entry["instances"].append({"uid": row.sop_instance_uid, "number": row.instance_number,
                                       "frames": row.number_of_frames or 1, "kind": instance_kind(row),
                                       "rows": row.rows, "columns": row.columns})
        show = self.link.show_patient
        return {
            "patient": {"name": (first.patient_name if first and show else None),
                        "birth_date": (first.patient_birth_date if first and show else None),
                        "sex": (first.patient_sex if first and show else None), "shown": show},
            "study": {"uid": self.link.study_instance_uid, "description": first.study_description if first else "",
                      "date": first.study_date if first else "", "time": first.study_time if first else "",
                      "accession": first.accession_number if first else "",
                      "modalities": sorted({i.modality for i in self.instances if i.modality}),
                      "instances": len(self.instances)},
            "series": list(series.values()),
            "expires_at": as_utc(self.link.expires_at).isoformat(),
            "recipient": self.link.recipient,
        }


def shared_study(session: Session, link: ShareLink, *, series_uid: str | None = None,
                 sop_instance_uid: str | None = None) -> SharedStudy:
    """The instances the link shows now (possibly none, when the sharer may no longer see any); only those of
    one series, or the one instance, when asked."""
    conditions = [visible_clause(sharer(session, link)), DicomInstance.study_instance_uid == link.study_instance_uid]
    if link.series_uids:
        conditions.append(DicomInstance.series_instance_uid.in_(link.series_uids.split()))
    if series_uid is not None:
        conditions.append(DicomInstance.series_instance_uid == series_uid)
    if sop_instance_uid is not None:
        conditions.append(DicomInstance.sop_instance_uid == sop_instance_uid)
    rows = session.scalars(select(DicomInstance).where(*conditions).order_by(*STUDY_ORDER)).all()
    return SharedStudy(link, list(rows))
