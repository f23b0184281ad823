"""DICOMweb against a real `xdshub serve` (gunicorn, mutual TLS, tokens) with the dicomweb-client package.

One hub serves the module: Org A stores a study with STOW-RS, finds it with
QIDO-RS at every level and retrieves it with WADO-RS (instances, series,
metadata, frames, rendered); Org B, with the same scopes, sees none of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import Dataset
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.client import HubClient
from hub.db import Database
from tests.factories.dicom import make_study, pixel_values
from tests.functional.conftest import RunningHub, new_hub, serving

pytestmark = pytest.mark.functional
SCOPES = "dicomweb:read dicomweb:write"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    running = new_hub(tmp_path_factory.mktemp("dicomweb") / "var")
    assert running.log is not None
    with serving(running.data_dir, running.settings, running.log):
        yield running


def client_for(hub: RunningHub, organisation: str) -> DICOMwebClient:
    """dicomweb-client over the organisation's mutual TLS with a certificate-bound token."""
    bundle: Path = hub.bundle(organisation)
    with HubClient(bundle) as hub_client:
        token = hub_client.token(SCOPES)
    session = requests.Session()
    session.trust_env = False
    session.cert = (str(bundle / "client.crt"), str(bundle / "client.key"))
    session.verify = str(bundle / "ca.crt")
    session.headers["Authorization"] = f"Bearer {token}"
    return DICOMwebClient(f"{hub.url}/dicomweb", session=session)


@pytest.fixture(scope="module")
def stored(hub: RunningHub) -> list[Dataset]:
    study = make_study(n_series=2, per_series=2, patient_id="WEB1")
    answer = client_for(hub, "Org A").store_instances(study)
    assert len(answer.ReferencedSOPSequence) == 4
    return study


def test_stow_then_qido_at_every_level(hub: RunningHub, stored: list[Dataset]) -> None:
    client = client_for(hub, "Org A")
    study_uid = str(stored[0].StudyInstanceUID)
    studies = client.search_for_studies(search_filters={"PatientID": "WEB1", "StudyDate": "20260101-"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [study_uid]
    assert studies[0]["00201208"]["Value"] == [4]
    assert client.search_for_studies(search_filters={"PatientName": "nobody*"}) == []
    series = client.search_for_series(study_uid, search_filters={"Modality": "MR"})
    assert len(series) == 1 and series[0]["0020000E"]["Value"] == [str(stored[2].SeriesInstanceUID)]
    instances = client.search_for_instances(study_uid, str(stored[0].SeriesInstanceUID), fields=["PatientName"])
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(
        str(ds.SOPInstanceUID) for ds in stored[:2])
    assert "00100010" not in instances[0]      # a study attribute is not returned under a series path
    assert len(client.search_for_instances(search_filters={"Modality": "CT"}, limit=1)) == 1


def test_wado_instance_series_metadata_frames_and_rendered(hub: RunningHub, stored: list[Dataset]) -> None:
    client = client_for(hub, "Org A")
    first = stored[0]
    uids = str(first.StudyInstanceUID), str(first.SeriesInstanceUID), str(first.SOPInstanceUID)
    instance = client.retrieve_instance(*uids)
    assert instance.SOPInstanceUID == first.SOPInstanceUID
    assert np.array_equal(instance.pixel_array, pixel_values())
    assert len(client.retrieve_series(*uids[:2])) == 2
    metadata = client.retrieve_instance_metadata(*uids)
    assert metadata["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7fe00010")
    assert len(client.retrieve_study_metadata(uids[0])) == 4
    (frame,) = client.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert frame == pixel_values().tobytes()
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",),
                                            params={"window": "2000,4000,linear"})
    grey = np.asarray(Image.open(io.BytesIO(png)))
    assert grey.shape == (8, 8) and grey.dtype == np.uint8
    jpeg = client.retrieve_instance_frames_rendered(*uids, frame_numbers=[1], media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_another_organisation_sees_nothing(hub: RunningHub, stored: list[Dataset]) -> None:
    client = client_for(hub, "Org B")
    assert client.search_for_studies() == []
    with pytest.raises(requests.HTTPError) as refused:
        client.retrieve_study(str(stored[0].StudyInstanceUID))
    assert refused.value.response.status_code == 404


def test_every_call_is_audited(hub: RunningHub, stored: list[Dataset]) -> None:
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            kinds = set(session.scalars(select(AuditRecord.event_type)))
    finally:
        database.dispose()
    assert {"RAD-108", "RAD-129", "RAD-107"} <= kinds
