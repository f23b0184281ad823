"""The DIMSE listener against a real pynetdicom SCU on loopback: echo, store, refusals, association checks, TLS."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from hub.security.pki import init_pki, issue_client_certificate
from hub.settings import Settings
from repository.dimse.statuses import StoreStatus
from repository.tables import DicomInstance
from tests.factories.dicom import make_instance

from .conftest import CALLING_AE, ORG_OID, Hub, associate, register_ae, send


def instances(hub: Hub) -> list[DicomInstance]:
    with hub.database.session() as session:
        return list(session.scalars(select(DicomInstance)))


def blob_count(hub: Hub) -> int:
    return sum(1 for path in hub.store.root.rglob("*") if path.is_file() and path.parent.name != "tmp")


def test_echo_answers_success(hub: Hub) -> None:
    assoc = associate(hub)
    assert assoc.is_established
    try:
        assert int(assoc.send_c_echo().Status) == 0x0000
    finally:
        assoc.release()


def test_a_stored_instance_is_ingested_for_the_ae_organisation_and_audited_per_study(hub: Hub) -> None:
    study_uid = generate_uid()
    first, second = (make_instance(study_uid=study_uid, instance_number=n) for n in (1, 2))
    assert send(hub, first, second) == [StoreStatus.SUCCESS, StoreStatus.SUCCESS]
    held = {row.sop_instance_uid: row for row in instances(hub)}
    assert set(held) == {first.SOPInstanceUID, second.SOPInstanceUID}
    row = held[first.SOPInstanceUID]
    assert row.study_instance_uid == study_uid
    assert row.patient_id == "P1^^^&1.2.3&ISO"        # the instance's issuer wins over the organisation's OID
    assert row.submitter_org_id is not None
    [transferred] = hub.wait_for_audit("110104")
    assert (transferred.action, transferred.outcome, transferred.study_uid) == ("C", 0, study_uid)
    assert transferred.organisation_oid == ORG_OID and transferred.patient_id == row.patient_id
    message = etree.fromstring(transferred.message.encode())
    assert message.find("ActiveParticipant[@UserIsRequestor='true']").get("AlternativeUserID") == \
        f"AETITLES={CALLING_AE}"
    [sop_class] = message.findall(".//ParticipantObjectDescription/SOPClass")
    assert sop_class.get("NumberOfInstances") == "2"


def test_the_same_instance_again_is_success_and_changes_nothing(hub: Hub) -> None:
    ds = make_instance()
    assert send(hub, ds) == [StoreStatus.SUCCESS]
    hub.wait_for_audit("110104")
    blobs = blob_count(hub)
    assert send(hub, ds) == [StoreStatus.SUCCESS]
    assert len(instances(hub)) == 1 and blob_count(hub) == blobs
    records = hub.wait_for_audit("110104", 2)
    assert [r.action for r in records] == ["C", "R"]     # PS3.15 A.5.3: R when the receiver held them already


@pytest.mark.parametrize(("spoil", "status"), [
    (lambda ds: delattr(ds, "PixelData"), StoreStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS),
    (lambda ds: delattr(ds, "PatientID"), StoreStatus.CANNOT_UNDERSTAND),
    (lambda ds: delattr(ds, "SeriesInstanceUID"), StoreStatus.CANNOT_UNDERSTAND),
], ids=["image without pixel data", "no patient id", "no series uid"])
def test_a_bad_instance_is_refused_with_its_status_and_nothing_is_kept(
        hub: Hub, spoil: Callable[[Dataset], None], status: StoreStatus) -> None:
    ds = make_instance()
    spoil(ds)
    assoc = associate(hub)
    try:
        answer = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert int(answer.Status) == status
    assert answer.ErrorComment
    assert instances(hub) == [] and blob_count(hub) == 0
    [failure] = hub.wait_for_audit("110104")
    assert failure.outcome == 8


def test_other_bytes_under_a_held_sop_instance_uid_are_refused(hub: Hub) -> None:
    ds = make_instance()
    assert send(hub, ds) == [StoreStatus.SUCCESS]
    changed = make_instance(sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID,
                            series_uid=ds.SeriesInstanceUID, body_part="HEAD")
    assert send(hub, changed) == [StoreStatus.INSTANCE_CONFLICT]
    [row] = instances(hub)
    assert row.body_part_examined == "CHEST"


def test_a_study_held_for_another_patient_is_refused(hub: Hub) -> None:
    ds = make_instance()
    other = make_instance(study_uid=ds.StudyInstanceUID, patient_id="P2")
    assert send(hub, ds, other) == [StoreStatus.SUCCESS, StoreStatus.PATIENT_CONFLICT]
    records = hub.wait_for_audit("110104", 2)
    assert sorted(r.outcome for r in records) == [0, 4]      # the study stored; one refusal (minor failure)


def test_an_unknown_calling_ae_is_rejected_and_audited(hub: Hub) -> None:
    assoc = associate(hub, "STRANGER")
    assert assoc.is_rejected
    [alert] = hub.wait_for_audit("110113")
    assert (alert.event_type, alert.outcome) == ("110126", 8)     # Node Authentication, serious failure
    assert "calling AE title not recognised" in alert.message


def test_a_wrong_called_ae_title_is_rejected(hub: Hub) -> None:
    assert associate(hub, called="SOMEONE").is_rejected
    [alert] = hub.wait_for_audit("110113")
    assert "called AE title not recognised" in alert.message


def test_a_registered_ae_from_another_host_is_rejected(hub: Hub) -> None:
    register_ae(hub.database, "FARAWAY", host="10.9.8.7")
    assert associate(hub, "FARAWAY").is_rejected
    register_ae(hub.database, "NEARBY", host="127.0.0.0/8")
    assoc = associate(hub, "NEARBY")
    assert assoc.is_established
    assoc.release()


# -- TLS ------------------------------------------------------------------------------------------------------

def client_context(settings: Settings, issuer: Settings, folder: Path) -> ssl.SSLContext:
    """A modality's TLS context: trusts the hub CA, presents a certificate issued by `issuer`'s CA."""
    cert, key = issue_client_certificate(issuer, "Modality 1", ORG_OID)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "client.crt").write_bytes(cert)
    (folder / "client.key").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.path(settings.ca_cert)))
    context.load_cert_chain(str(folder / "client.crt"), str(folder / "client.key"))
    return context


@pytest.fixture
def tls_hub(make_hub) -> Hub:  # type: ignore[no-untyped-def]
    return make_hub(dimse_tls=True)  # type: ignore[no-any-return]


def test_tls_with_a_client_certificate_of_the_hub_ca_stores(tls_hub: Hub, tmp_path: Path) -> None:
    context = client_context(tls_hub.settings, tls_hub.settings, tmp_path / "modality")
    assoc = associate(tls_hub, tls=context)
    assert assoc.is_established
    try:
        assert int(assoc.send_c_store(make_instance()).Status) == StoreStatus.SUCCESS
    finally:
        assoc.release()
    assert len(instances(tls_hub)) == 1


def test_tls_with_a_client_certificate_of_another_ca_fails(tls_hub: Hub, tmp_path: Path) -> None:
    other = replace(tls_hub.settings, data_dir=tmp_path / "other-hub")
    other.data_dir.mkdir()
    init_pki(other)
    context = client_context(tls_hub.settings, other, tmp_path / "stranger")
    assoc = associate(tls_hub, tls=context)
    established = assoc.is_established
    if established:       # TLS 1.3: the client learns of the refused certificate on its first read
        assoc.abort()
    assert not established
    assert instances(tls_hub) == []


def test_tls_listener_refuses_plain_associations(tls_hub: Hub) -> None:
    assert not associate(tls_hub).is_established
