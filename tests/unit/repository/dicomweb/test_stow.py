"""STOW-RS (PS3.18 10.5): statuses 200/202/409 (Table 10.5.3-1), failure reasons (Table I.2-2), nothing kept
of a truncated body, ownership and the RAD-108 audit record."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pytest
from sqlalchemy import event, func, select

from hub.audit.tables import AuditRecord
from hub.db import Database
from hub.errors import SenderFault
from hub.security.identity import Caller
from repository.blobstore import FileBlobStore
from repository.dicomweb.stow import FailureReason, store_instances
from repository.ingest import Sender
from repository.tables import DicomInstance
from tests.factories.dicom import instance_bytes, make_instance, make_study
from tests.unit.repository.conftest import blob_files
from tests.unit.repository.dicomweb.conftest import Web, multipart

DICOM = "application/dicom"


def stow(web: Web, parts: list[tuple[str, bytes]], path: str = "/dicomweb/studies", scope: str = "dicomweb:write",
         truncate: int = 0):  # type: ignore[no-untyped-def]
    body, content_type = multipart(parts)
    return web.call(web.a, "POST", path, scope=scope, data=body[:len(body) - truncate] if truncate else body,
                    headers={"Content-Type": content_type, "Accept": "application/dicom+json"})


def instances(web: Web) -> int:
    with web.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(DicomInstance)) or 0)


def failures(answer) -> list[int]:  # type: ignore[no-untyped-def]
    return [item["00081197"]["Value"][0] for item in answer.json.get("00081198", {}).get("Value", [])]


def test_all_stored_is_200_with_references_owned_by_the_caller_and_audited(web: Web) -> None:
    study = make_study(n_series=1, per_series=2)
    answer = stow(web, [(DICOM, instance_bytes(ds)) for ds in study])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type == "application/dicom+json"
    stored = answer.json["00081199"]["Value"]
    assert [s["00081155"]["Value"][0] for s in stored] == [str(ds.SOPInstanceUID) for ds in study]
    assert stored[0]["00081190"]["Value"][0].endswith(
        f"/dicomweb/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}"
        f"/instances/{study[0].SOPInstanceUID}")
    assert answer.json["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{study[0].StudyInstanceUID}")
    assert "00081198" not in answer.json
    with web.database.session() as session:
        owners = set(session.scalars(select(DicomInstance.submitter_org_id)))
        audited = session.scalars(select(AuditRecord).where(AuditRecord.event_type == "RAD-108")).all()
    assert owners == {web.a.organisation_id}
    assert len(audited) == 1 and audited[0].outcome == 0 and audited[0].study_uid == str(study[0].StudyInstanceUID)


def test_the_same_instance_again_is_stored_and_changes_nothing(web: Web) -> None:
    dataset = make_instance()
    assert stow(web, [(DICOM, instance_bytes(dataset))]).status_code == 200
    assert stow(web, [(DICOM, instance_bytes(dataset))]).status_code == 200
    assert instances(web) == 1


def test_an_instance_of_another_study_than_the_path_fails_and_the_rest_is_202(web: Web) -> None:
    good = make_instance()
    other = make_instance()
    answer = stow(web, [(DICOM, instance_bytes(good)), (DICOM, instance_bytes(other))],
                  path=f"/dicomweb/studies/{good.StudyInstanceUID}")
    assert answer.status_code == 202
    assert failures(answer) == [FailureReason.DATA_SET_DOES_NOT_MATCH]
    failed = answer.json["00081198"]["Value"][0]
    assert failed["00081155"]["Value"] == [str(other.SOPInstanceUID)]
    assert instances(web) == 1


@pytest.mark.parametrize(("parts", "reason"), [
    ([(DICOM, b"not DICOM at all")], FailureReason.CANNOT_UNDERSTAND),
    ([("application/pdf", b"%PDF-1.7")], FailureReason.CANNOT_UNDERSTAND),
], ids=["garbage", "not-dicom-part"])
def test_nothing_stored_is_409_with_the_failure_reason(web: Web, parts: list[tuple[str, bytes]],
                                                        reason: FailureReason) -> None:
    answer = stow(web, parts)
    assert answer.status_code == 409
    assert failures(answer) == [reason]
    assert "00081199" not in answer.json
    assert instances(web) == 0


def test_other_content_under_a_held_sop_instance_uid_is_0111_and_an_image_without_pixels_a900(web: Web) -> None:
    first = make_instance()
    assert stow(web, [(DICOM, instance_bytes(first))]).status_code == 200
    changed = make_instance(sop_uid=str(first.SOPInstanceUID), study_uid=str(first.StudyInstanceUID))
    changed.InstanceNumber = 7
    no_pixels = make_instance()
    del no_pixels.PixelData
    answer = stow(web, [(DICOM, instance_bytes(changed)), (DICOM, instance_bytes(no_pixels))])
    assert answer.status_code == 409
    assert failures(answer) == [FailureReason.DUPLICATE_SOP_INSTANCE, FailureReason.DATA_SET_DOES_NOT_MATCH]


def test_a_truncated_body_is_400_and_keeps_nothing(web: Web) -> None:
    study = make_study(n_series=1, per_series=3)
    answer = stow(web, [(DICOM, instance_bytes(ds)) for ds in study], truncate=300)
    assert answer.status_code == 400
    assert "truncated" in answer.json["detail"]
    assert instances(web) == 0
    assert blob_files(web.store) == []
    with web.database.session() as session:
        audited = session.scalars(select(AuditRecord.outcome).where(AuditRecord.event_type == "RAD-108")).all()
    assert audited == [4]


@pytest.mark.parametrize("content_type", ["application/dicom", 'multipart/related; type="application/dicom+json"; '
                                                                "boundary=x"])
def test_other_bodies_are_415(web: Web, content_type: str) -> None:
    answer = web.call(web.a, "POST", "/dicomweb/studies", scope="dicomweb:write", data=b"x",
                      headers={"Content-Type": content_type})
    assert answer.status_code == 415


def test_storing_needs_the_write_scope_and_a_certificate(web: Web) -> None:
    body, content_type = multipart([(DICOM, instance_bytes(make_instance()))])
    assert web.call(web.a, "POST", "/dicomweb/studies", scope="dicomweb:read", data=body,
                    headers={"Content-Type": content_type}).status_code == 403
    assert web.call(None, "POST", "/dicomweb/studies", data=body,
                    headers={"Content-Type": content_type}).status_code == 401
    assert instances(web) == 0
    with web.database.session() as session:
        alerts = session.scalars(select(AuditRecord.event_id).where(AuditRecord.event_id == "110113")).all()
    assert len(alerts) == 2


def test_a_part_without_the_part10_preamble_is_stored_as_a_part10_file(web: Web) -> None:
    import io

    import pydicom

    dataset = make_instance()
    sink = io.BytesIO()
    pydicom.dcmwrite(sink, dataset)                # File Meta Information, but no preamble and no "DICM"
    assert sink.getvalue()[128:132] != b"DICM"
    assert stow(web, [(DICOM, sink.getvalue())]).status_code == 200
    with web.database.session() as session:
        row = session.scalars(select(DicomInstance)).one()
    with web.store.open(row.sha256) as stored:
        assert stored.read()[128:132] == b"DICM"


# -- the two phases: parts stored before the write transaction; bytes reclaimed meanwhile ----------------------

@dataclass
class _Part:
    content_type: str
    file: BinaryIO


def test_every_part_is_read_and_stored_before_the_write_transaction_begins(database: Database,
                                                                           file_store: FileBlobStore,
                                                                           caller: Caller) -> None:
    study = make_study(n_series=1, per_series=3)
    seen_in_transaction: list[bool] = []
    blobs_at_begin: list[int] = []
    with database.new_session() as session:
        def parts() -> Iterator[_Part]:
            for dataset in study:
                seen_in_transaction.append(session.in_transaction())
                yield _Part(DICOM, io.BytesIO(instance_bytes(dataset)))
            seen_in_transaction.append(session.in_transaction())

        event.listen(session, "after_begin", lambda *_: blobs_at_begin.append(len(blob_files(file_store))))
        result = store_instances(session, file_store, parts(), Sender(caller.organisation_id,
                                                                      caller.organisation_oid))
        session.commit()
    assert seen_in_transaction == [False] * 4    # on SQLite, the other writers' gate stays open meanwhile
    assert blobs_at_begin == [3]                  # every blob durable under its name before the first statement
    assert [s.sop_instance_uid for s in result.stored] == [str(ds.SOPInstanceUID) for ds in study]


def test_bytes_found_stored_but_reclaimed_before_the_rows_are_refused_not_recorded(database: Database,
                                                                                  file_store: FileBlobStore,
                                                                                  caller: Caller) -> None:
    """Another request's failure may reclaim bytes this one found stored already (content addressing); the
    instance then fails with 0110 rather than a row naming bytes that are gone."""
    kept, lost = make_study(n_series=1, per_series=2)
    lost_bytes = instance_bytes(lost)
    address = file_store.put(io.BytesIO(lost_bytes)).sha256      # stored, by a request still in flight

    def parts() -> Iterator[_Part]:
        yield _Part(DICOM, io.BytesIO(instance_bytes(kept)))
        yield _Part(DICOM, io.BytesIO(lost_bytes))
        file_store.delete(address)           # that request failed and reclaimed its blobs

    with database.new_session() as session:
        result = store_instances(session, file_store, parts(), Sender(caller.organisation_id,
                                                                      caller.organisation_oid))
        session.commit()
    assert [s.sop_instance_uid for s in result.stored] == [str(kept.SOPInstanceUID)]
    assert [(f.sop_instance_uid, f.reason) for f in result.failed] == [
        (str(lost.SOPInstanceUID), FailureReason.PROCESSING_FAILURE)]
    assert "removed meanwhile" in result.failed[0].message
    with database.session() as session:
        assert session.get(DicomInstance, str(lost.SOPInstanceUID)) is None


def test_a_failed_request_reclaims_only_the_bytes_it_wrote(database: Database, file_store: FileBlobStore,
                                                          caller: Caller) -> None:
    """Bytes found stored already may be another request's, in flight: a body that breaks off leaves them."""
    theirs, mine = make_study(n_series=1, per_series=2)
    their_bytes = instance_bytes(theirs)
    address = file_store.put(io.BytesIO(their_bytes)).sha256      # stored by a request not yet committed

    def parts() -> Iterator[_Part]:
        yield _Part(DICOM, io.BytesIO(their_bytes))
        yield _Part(DICOM, io.BytesIO(instance_bytes(mine)))
        raise SenderFault("multipart body is truncated")

    with database.new_session() as session, pytest.raises(SenderFault):
        store_instances(session, file_store, parts(), Sender(caller.organisation_id, caller.organisation_oid))
    assert blob_files(file_store) == [address]
