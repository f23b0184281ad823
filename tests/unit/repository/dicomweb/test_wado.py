"""WADO-RS (PS3.18 10.4): instances with transfer syntax negotiation, metadata with bulk data URIs, bulk data,
frames, rendered frames with known grey levels, and 404 for what the caller may not see."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import Dataset
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from repository.dicomweb.render import Window, voi_window
from tests.factories.dicom import instance_bytes, make_instance, make_study, pixel_values
from tests.unit.repository.dicomweb.conftest import Web, parts_of

EXPLICIT, IMPLICIT, JPEG_BASELINE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50"


def url(ds: Dataset, tail: str = "") -> str:
    return f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}{tail}"


def get(web: Web, path: str, accept: str | None = None, party=None):  # type: ignore[no-untyped-def]
    return web.call(party or web.a, "GET", path, scope="dicomweb:read", headers={"Accept": accept} if accept else {})


@pytest.fixture
def study(web: Web) -> list[Dataset]:
    datasets = make_study(n_series=2, per_series=2)
    web.ingest(web.a, datasets)
    return datasets


def test_study_series_and_instance_retrieve_stream_the_stored_bytes(web: Web, study: list[Dataset]) -> None:
    answer = get(web, f"/dicomweb/studies/{study[0].StudyInstanceUID}",
                 'multipart/related; type="application/dicom"; transfer-syntax=*')
    assert answer.status_code == 200
    assert answer.mimetype == "multipart/related"
    assert sorted(data for _, data in parts_of(answer)) == sorted(instance_bytes(ds) for ds in study)
    series = get(web, f"/dicomweb/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}")
    assert len(parts_of(series)) == 2
    (one,) = parts_of(get(web, url(study[0])))
    assert one == ("application/dicom", instance_bytes(study[0]))
    with web.database.session() as session:
        audited = session.scalars(select(AuditRecord).where(AuditRecord.event_type == "RAD-107")).all()
    assert len(audited) == 3 and {a.event_id for a in audited} == {"110104"}


def test_an_answer_as_stored_has_its_exact_length_and_a_transcoded_one_is_chunked(web: Web,
                                                                                 study: list[Dataset]) -> None:
    stored = get(web, f"/dicomweb/studies/{study[0].StudyInstanceUID}",
                 'multipart/related; type="application/dicom"; transfer-syntax=*')
    assert stored.content_length == len(stored.get_data()) and "Transfer-Encoding" not in stored.headers
    transcoded = get(web, url(study[0]), f'multipart/related; type="application/dicom"; transfer-syntax={IMPLICIT}')
    assert transcoded.content_length is None and len(parts_of(transcoded)) == 1


def test_a_blob_shorter_than_recorded_cuts_the_answer_off(web: Web, study: list[Dataset]) -> None:
    from repository.dicomweb.codec import ShortPart
    from repository.tables import DicomInstance

    with web.database.session() as session:
        row = session.get(DicomInstance, str(study[0].SOPInstanceUID))
        assert row is not None
        row.size += 10          # the row promises more than the blob holds, as after damage to storage
    with pytest.raises(ShortPart):      # the server stops sending: the client sees fewer bytes than announced
        get(web, url(study[0]), 'multipart/related; type="application/dicom"; transfer-syntax=*').get_data()


def test_an_asked_transfer_syntax_is_transcoded_and_an_impossible_one_is_406(web: Web, study: list[Dataset]) -> None:
    answer = get(web, url(study[0]), f'multipart/related; type="application/dicom"; transfer-syntax={IMPLICIT}')
    ((_, data),) = parts_of(answer)
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.file_meta.TransferSyntaxUID == IMPLICIT
    assert np.array_equal(back.pixel_array, pixel_values())
    refused = get(web, url(study[0]), f'multipart/related; type="application/dicom"; transfer-syntax={JPEG_BASELINE}')
    assert refused.status_code == 406
    assert get(web, url(study[0]), "application/pdf").status_code == 406


def test_what_another_organisation_holds_is_404_like_what_nobody_holds(web: Web, study: list[Dataset]) -> None:
    for path in (f"/dicomweb/studies/{study[0].StudyInstanceUID}", url(study[0]), url(study[0], "/metadata"),
                 url(study[0], "/frames/1"), url(study[0], "/rendered")):
        assert get(web, path, party=web.b).status_code == 404, path
    assert get(web, "/dicomweb/studies/1.2.3.404").status_code == 404
    assert get(web, "/dicomweb/studies/not..a.uid").status_code == 400


def test_metadata_gives_bulk_data_uris_that_answer_the_bulk_values(web: Web, study: list[Dataset]) -> None:
    answer = get(web, f"/dicomweb/studies/{study[0].StudyInstanceUID}/metadata")
    assert answer.status_code == 200 and answer.content_type == "application/dicom+json"
    assert len(answer.json) == 4
    first = next(m for m in answer.json if m["00080018"]["Value"] == [str(study[0].SOPInstanceUID)])
    assert first["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}
    pixel = first["7FE00010"]
    assert "Value" not in pixel and "InlineBinary" not in pixel
    assert pixel["BulkDataURI"].endswith(url(study[0], "/bulkdata/7fe00010"))
    ((ctype, data),) = parts_of(get(web, url(study[0], "/bulkdata/7fe00010")))
    assert ctype == "application/octet-stream" and data == pixel_values().tobytes()
    assert get(web, url(study[0], "/bulkdata/00100010")).status_code == 404
    assert get(web, url(study[0], "/bulkdata/zz")).status_code == 400


def test_frames_are_the_uncompressed_pixel_values_and_a_missing_frame_is_404(web: Web) -> None:
    dataset = make_instance(rows=4, columns=4)
    frames = [pixel_values(4, 4), pixel_values(4, 4)[::-1]]
    dataset.NumberOfFrames = 2
    dataset.PixelData = b"".join(f.tobytes() for f in frames)
    web.ingest(web.a, [dataset])
    answer = get(web, url(dataset, "/frames/2,1"), 'multipart/related; type="application/octet-stream"')
    assert answer.status_code == 200
    assert [data for _, data in parts_of(answer)] == [frames[1].tobytes(), frames[0].tobytes()]
    assert get(web, url(dataset, "/frames/3")).status_code == 404
    assert get(web, url(dataset, "/frames/0")).status_code == 400
    assert get(web, url(dataset, "/frames/1"), 'multipart/related; type="image/jpeg"').status_code == 406


def expected_linear(x: float, c: float, w: float) -> int:
    """PS3.3 C.11.2.1.2.1, written out as the standard gives it."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0
    if x > c - 0.5 + (w - 1) / 2:
        return 255
    return int(np.rint(((x - (c - 0.5)) / (w - 1) + 0.5) * 255))


def rendered_grey(web: Web, ds: Dataset, query: str) -> np.ndarray:
    answer = get(web, url(ds, f"/rendered?{query}"), "image/png")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type == "image/png"
    return np.asarray(Image.open(io.BytesIO(answer.get_data())))


def test_rendered_png_applies_rescale_and_the_window(web: Web) -> None:
    dataset = make_instance()
    dataset.RescaleSlope, dataset.RescaleIntercept = 2, -1024
    web.ingest(web.a, [dataset])
    grey = rendered_grey(web, dataset, "window=2500,2001,linear")
    hounsfield = pixel_values().astype(float) * 2 - 1024
    expected = np.vectorize(lambda x: expected_linear(x, 2500, 2001))(hounsfield)
    assert grey.dtype == np.uint8 and np.array_equal(grey, expected)
    assert 0 < grey.min() < grey.max() < 255 or grey.min() == 0


def test_monochrome1_is_inverted_and_the_viewport_scales(web: Web) -> None:
    dataset = make_instance()
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.WindowCenter, dataset.WindowWidth = 2000, 1000
    web.ingest(web.a, [dataset])
    grey = rendered_grey(web, dataset, "")
    expected = 255 - np.vectorize(lambda x: expected_linear(x, 2000, 1000))(pixel_values().astype(float))
    assert np.array_equal(grey, expected)
    scaled = rendered_grey(web, dataset, "viewport=32,16")
    assert scaled.shape == (16, 16)


def test_rendered_jpeg_of_a_frame_and_bad_parameters(web: Web, study: list[Dataset]) -> None:
    answer = get(web, url(study[0], "/frames/1/rendered?quality=50"), "image/jpeg")
    assert answer.status_code == 200 and answer.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(answer.get_data())).size == (8, 8)
    assert get(web, url(study[0], "/rendered"), "image/gif").status_code == 406
    for query in ("window=1,2", "window=1,0,linear", "window=1,2,cubic", "viewport=0,10", "quality=101", "zoom=2"):
        assert get(web, url(study[0], f"/rendered?{query}"), "image/png").status_code == 400, query
    assert get(web, url(study[0], "/frames/2/rendered")).status_code == 404


@pytest.mark.parametrize(("function", "values", "expected"), [
    ("LINEAR", [0, 99, 100, 101, 200], [0, 0, 128, 255, 255]),        # c=100.5 w=2: 100 is the middle
    ("LINEAR_EXACT", [0, 100, 150, 200, 300], [0, 0, 128, 255, 255]),
    ("SIGMOID", [150], [128]),
])
def test_voi_functions(function: str, values: list[int], expected: list[int]) -> None:
    window = Window(100.5, 2, function) if function == "LINEAR" else Window(150, 100, function)
    assert voi_window(np.array(values, dtype=float), window).tolist() == expected
