"""POST /api/captures on a real `xdshub serve`: mutual TLS, a bound token, multipart upload, DICOM stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from hub.audit.tables import AuditRecord
from hub.client import HubClient
from hub.db import Database
from repository.tables import DicomInstance
from tests.factories.media import jpeg_bytes, pdf_bytes, png_bytes
from tests.functional.conftest import RunningHub

pytestmark = pytest.mark.functional

FIELDS = {"patient_id": "CAPF-1", "patient_name": "Doe^Jane", "birth_date": "1980-02-14", "body_part": "skin",
          "department": "Dermatology", "device": "DermCam 3", "accession": "ACCF-9"}


@pytest.fixture
def client(running_hub: RunningHub) -> Iterator[HubClient]:
    with HubClient(running_hub.bundle("Org A")) as hub_client:
        yield hub_client


@pytest.fixture
def database(running_hub: RunningHub) -> Iterator[Database]:
    db = Database(running_hub.settings.database_url)
    try:
        yield db
    finally:
        db.dispose()


def post(client: HubClient, files: dict[str, tuple[str, bytes, str]] | None, fields: dict[str, str],
         scope: str | None = None, token: bool = True):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {client.token(scope)}"} if token else {}
    return client.http.post(f"{client.base_url}/api/captures", files=files, data=fields, headers=headers,
                            timeout=30)


def held(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(DicomInstance)) or 0


def test_a_jpeg_and_a_pdf_are_stored_as_dicom_in_one_study(client: HubClient, database: Database,
                                                           running_hub: RunningHub) -> None:
    photo = post(client, {"file": ("lesion.jpg", jpeg_bytes(), "image/jpeg")}, FIELDS)
    assert photo.status_code == 201, photo.text
    document = post(client, {"file": ("consent.pdf", pdf_bytes(), "application/pdf")}, FIELDS)
    assert document.status_code == 201, document.text
    first, second = photo.json(), document.json()
    assert first["study_instance_uid"] == second["study_instance_uid"]
    assert first["series_instance_uid"] != second["series_instance_uid"]
    assert first["patient_id"] == f"CAPF-1^^^&{running_hub.oids['Org A']}&ISO"
    with database.session() as session:
        rows = {r.sop_instance_uid: r for r in session.scalars(select(DicomInstance).where(
            DicomInstance.study_instance_uid == first["study_instance_uid"]))}
        assert set(rows) == {first["sop_instance_uid"], second["sop_instance_uid"]}
        jpeg_row, pdf_row = rows[first["sop_instance_uid"]], rows[second["sop_instance_uid"]]
        assert (jpeg_row.sop_class_uid, jpeg_row.transfer_syntax_uid) == ("1.2.840.10008.5.1.4.1.1.77.1.4",
                                                                          "1.2.840.10008.1.2.4.50")
        assert pdf_row.sop_class_uid == "1.2.840.10008.5.1.4.1.1.104.1"
        assert (jpeg_row.accession_number, jpeg_row.body_part_examined, jpeg_row.department,
                jpeg_row.station_name, jpeg_row.patient_birth_date) == ("ACCF-9", "SKIN", "Dermatology",
                                                                        "DermCam 3", "19800214")
        imports = list(session.scalars(select(AuditRecord).where(
            AuditRecord.event_id == "110107", AuditRecord.study_uid == first["study_instance_uid"])))
        assert len(imports) == 2 and {r.outcome for r in imports} == {0}
        assert {r.organisation_oid for r in imports} == {running_hub.oids["Org A"]}


@pytest.mark.parametrize("files, fields, status, detail", [
    (None, FIELDS, 400, "the file is missing"),
    ({"file": ("a.jpg", jpeg_bytes(), "image/jpeg")}, {**FIELDS, "patient_id": ""}, 400, "patient_id is required"),
    ({"file": ("a.jpg", png_bytes(), "image/jpeg")}, FIELDS, 400, "declared JPEG (image/jpeg) but its content is PNG"),
    ({"file": ("a.gif", b"GIF89a", "image/gif")}, FIELDS, 415, "image/gif is not a type the hub captures"),
    ({"file": ("a.jpg", jpeg_bytes(), "image/jpeg")}, {**FIELDS, "birth_date": "1980-02-30"}, 400, "birth_date"),
])
def test_bad_captures_are_problems_and_store_nothing(client: HubClient, database: Database, files: dict | None,  # type: ignore[type-arg]
                                                     fields: dict[str, str], status: int, detail: str) -> None:
    before = held(database)
    answer = post(client, files, fields)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert detail in answer.json()["detail"]
    assert held(database) == before


def test_captures_need_a_token_with_dicomweb_write(client: HubClient, database: Database) -> None:
    before = held(database)
    upload = {"file": ("a.jpg", jpeg_bytes(), "image/jpeg")}
    assert post(client, upload, FIELDS, token=False).status_code == 401
    assert post(client, upload, FIELDS, scope="xds:query").status_code == 403
    assert held(database) == before
