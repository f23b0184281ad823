"""`GET /IHEInvokeImageDisplay`: the EMR launch of IHE Invoke Image Display (IID, RAD-106), Image Display side.

    requestType=STUDY    studyUID=UID[,UID...] or accessionNumber=A[,A...]   opens the viewer on the study
                                                                             (several: a list to choose from)
    requestType=PATIENT  patientID=ID^^^&OID&ISO (or the bare DICOM          the patient's studies, newest first
                         Patient ID), optional mostRecentResults=N,
                         lowerDateTime / upperDateTime (YYYYMMDD...),
                         modalitiesInStudy=CT,MR

Who may ask: a signed-in console account with role `clinician` tied to an
organisation (`xdshub user add NAME --role clinician --org OID`), or an
organisation's system with its client certificate and an OAuth token with
scope dicomweb:read. Either sees what that organisation may see; anything
else answers as not found. A study opens the same viewer a share link
opens, through a one-use launch link made for the clinician (audited as
the clinician). `viewerType`, `diagnosticQuality` and `keyImagesOnly` are
accepted; this hub has one viewer, which always shows every image.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, redirect, request, url_for
from sqlalchemy import ColumnElement, select

from hub import get_settings
from hub.console.web import signed_in
from hub.db import get_session
from hub.security.identity import Caller
from hub.security.protect import authenticate
from hub.shares.api import link_policy
from hub.shares.content import organisation_view
from hub.shares.links import ShareRequest, create_link
from hub.shares.tables import LAUNCH
from hub.shares.viewer import page
from hub.tables import Organisation
from repository.dicomfile import is_valid_uid
from repository.tables import DicomInstance
from repository.visibility import visible_clause

blueprint = Blueprint("launch", __name__)

PATH = "/IHEInvokeImageDisplay"
CLINICIAN = "clinician"
MAX_LIST = 200


@dataclass(frozen=True)
class Launcher:
    """Who launched: the organisation whose view applies, and who is audited as looking."""

    caller: Caller
    user_id: str
    display: str


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _launcher() -> Launcher | Response:
    """The clinician or system asking, or the redirect to the console's login."""
    if request.authorization is not None:
        caller = authenticate("dicomweb:read")
        return Launcher(caller, caller.organisation_oid, caller.organisation_name)
    found = signed_in()
    if found is None:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
    user = found[1]
    if user.role != CLINICIAN:
        raise Refused(403, f"Invoke Image Display is for clinicians; account {user.name} has role {user.role}.")
    organisation = get_session().get(Organisation, user.organisation_id) if user.organisation_id else None
    if organisation is None:
        raise Refused(403, f"Account {user.name} is not tied to an organisation, so it may see no study "
                           f"(xdshub user add {user.name} --role clinician --org OID).")
    return Launcher(organisation_view(organisation, user.name), user.name, f"{user.name} (clinician)")


def _list(name: str) -> list[str]:
    return [v.strip() for v in request.args.get(name, "").split(",") if v.strip()]


def _studies(launcher: Launcher, *conditions: ColumnElement[bool],
             modalities: frozenset[str] = frozenset()) -> list[dict[str, object]]:
    """The studies matching `conditions` the launcher may see, newest first; with `modalities`, only those
    holding one of them (ModalitiesInStudy)."""
    rows = get_session().execute(select(
        DicomInstance.study_instance_uid, DicomInstance.study_date, DicomInstance.study_time,
        DicomInstance.study_description, DicomInstance.modality, DicomInstance.accession_number,
        DicomInstance.patient_name).where(visible_clause(launcher.caller), *conditions).distinct())
    studies: dict[str, dict[str, object]] = {}
    for uid, date, time, description, modality, accession, patient_name in rows:
        study = studies.setdefault(uid, {"uid": uid, "date": date, "time": time, "description": description,
                                         "accession": accession, "patient": patient_name, "modalities": set()})
        if modality:
            study["modalities"].add(modality)   # type: ignore[attr-defined]
    ordered = sorted((s for s in studies.values() if not modalities or modalities & s["modalities"]),  # type: ignore[operator]
                     key=lambda s: (str(s["date"]), str(s["time"]), str(s["uid"])), reverse=True)
    for study in ordered:
        study["modalities"] = ", ".join(sorted(study["modalities"]))   # type: ignore[call-overload]
        study["open"] = f"{PATH}?{urlencode({'requestType': 'STUDY', 'studyUID': study['uid']})}"
    return ordered


def _open(launcher: Launcher, study_uid: str) -> Response:
    session = get_session()
    made = create_link(session, launcher.caller.organisation_id, launcher.user_id,
                       ShareRequest(study_uid=study_uid, expires_in=get_settings().share_visit_seconds, max_uses=1,
                                    recipient=launcher.display), link_policy(get_settings()), kind=LAUNCH)
    session.commit()
    response = redirect(f"/s/{made.token}", 303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response   # type: ignore[return-value]


def _study_request(launcher: Launcher) -> Response:
    uids, accessions = _list("studyUID"), _list("accessionNumber")
    if not uids and not accessions:
        raise Refused(400, "requestType=STUDY needs studyUID or accessionNumber.")
    bad = [uid for uid in uids if not is_valid_uid(uid)]
    if bad:
        raise Refused(400, f"studyUID {bad[0][:80]!r} is not a DICOM UID.")
    condition = (DicomInstance.study_instance_uid.in_(uids) if uids
                 else DicomInstance.accession_number.in_(accessions))
    studies = _studies(launcher, condition)
    if not studies:
        raise Refused(404, "No such study here, or not one you may see.")
    if len(studies) == 1:
        return _open(launcher, str(studies[0]["uid"]))
    return page("launch_studies.html", studies=studies, title="Studies")


def _patient_request(launcher: Launcher) -> Response:
    patient = request.args.get("patientID", "").strip()
    if not patient:
        raise Refused(400, "requestType=PATIENT needs patientID (ID^^^&OID&ISO).")
    conditions: list[ColumnElement[bool]] = [DicomInstance.patient_id == patient if "^" in patient
                                else DicomInstance.dicom_patient_id == patient]
    lower, upper = request.args.get("lowerDateTime", ""), request.args.get("upperDateTime", "")
    if lower:
        conditions.append(DicomInstance.study_date >= lower[:8])
    if upper:
        conditions.append(DicomInstance.study_date <= upper[:8])
    studies = _studies(launcher, *conditions, modalities=frozenset(_list("modalitiesInStudy")))
    most_recent = request.args.get("mostRecentResults", "")
    if most_recent:
        if not most_recent.isdigit() or int(most_recent) < 1:
            raise Refused(400, "mostRecentResults must be a whole number of at least 1.")
        studies = studies[:int(most_recent)]
    if not studies:
        raise Refused(404, "No study of this patient here, or none you may see.")
    return page("launch_studies.html", studies=studies[:MAX_LIST], title="Studies of the patient")


@blueprint.get(PATH)
def invoke_image_display() -> Response:
    try:
        launcher = _launcher()
        if isinstance(launcher, Response):
            return launcher
        kind = request.args.get("requestType", "").upper()
        if kind == "STUDY":
            return _study_request(launcher)
        if kind == "PATIENT":
            return _patient_request(launcher)
        raise Refused(400, "requestType must be STUDY or PATIENT.")
    except Refused as exc:
        return page("share_gone.html", exc.status, heading="Cannot open the images", message=str(exc),
                    status="launch")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
