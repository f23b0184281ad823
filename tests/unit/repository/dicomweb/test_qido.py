"""QIDO-RS (PS3.18 10.6): matching (PS3.4 C.2.2.2), paging, includefield, required attributes, visibility."""

from __future__ import annotations

from typing import Any

import pytest

from repository.blobstore import BlobStore, FileBlobStore
from repository.dicomweb.errors import BadRequest
from repository.dicomweb.qido import FUZZY_WARNING, Level, parse_search
from tests.factories.dicom import make_instance, make_study
from tests.unit.repository.dicomweb.conftest import Web


@pytest.fixture
def store(file_store: FileBlobStore) -> BlobStore:
    """A search never reads the blob store: the local folder is enough (STOW and WADO cover S3)."""
    return file_store


STUDY_DATE, STUDY_TIME, PATIENT_NAME, PATIENT_ID = "00080020", "00080030", "00100010", "00100020"
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
MODALITIES, N_SERIES, N_INSTANCES, RETRIEVE_URL = "00080061", "00201206", "00201208", "00081190"


def value(item: dict[str, Any], tag: str) -> Any:
    values = item[tag].get("Value", [])
    return values[0] if len(values) == 1 else values


@pytest.fixture
def studies(web: Web) -> list[str]:
    """Three studies of Org A: two CT/MR series (Jan 15, DOE^JANE), one MR (Mar 2, SMITH^JOHN), one CT (Dec 31)."""
    first = make_study(n_series=2, per_series=2, patient_id="P1")
    second = make_study(n_series=1, per_series=1, modalities=("MR",), patient_id="P2")
    third = make_study(n_series=1, per_series=3, modalities=("CT",), patient_id="P3")
    for ds in second:
        ds.PatientName, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "SMITH^JOHN", "20260302", "141500", "ACC-2"
    for ds in third:
        ds.PatientName, ds.StudyDate, ds.AccessionNumber = "Doe^Janet", "20251231", "XYZ"
    web.ingest(web.a, first + second + third)
    return [str(s[0].StudyInstanceUID) for s in (first, second, third)]


def search(web: Web, path: str, party: Any = None) -> Any:
    answer = web.call(party or web.a, "GET", path, scope="dicomweb:read", headers={"Accept": "application/dicom+json"})
    return answer


@pytest.mark.parametrize(("query", "expected"), [
    ("", [0, 1, 2]),
    ("PatientName=doe*", [0, 2]),                      # PN: case-insensitive wildcard
    ("PatientName=DOE%5EJANE", [0]),                   # exact, still case-insensitive
    ("00100010=smith%5Ejohn", [1]),                    # the tag instead of the keyword
    ("AccessionNumber=ACC-?", [0, 1]),                 # ? is one character
    ("AccessionNumber=acc-1", []),                     # other text is case-sensitive
    ("StudyDate=20260101-20261231", [0, 1]),
    ("StudyDate=-20260115", [0, 2]),                   # open start
    ("StudyDate=20260116-", [1]),                      # open end
    ("StudyDate=20251231", [2]),
    ("StudyTime=140000-150000", [1]),
    ("ModalitiesInStudy=MR", [0, 1]),
    ("PatientID=P3", [2]),
    ("PatientName=", [0, 1, 2]),                       # universal matching
    ("fuzzymatching=false&PatientName=DOE*", [0, 2]),
], ids=lambda v: str(v))
def test_study_matching(web: Web, studies: list[str], query: str, expected: list[int]) -> None:
    answer = search(web, f"/dicomweb/studies?{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found = sorted(value(item, STUDY_UID) for item in answer.json)
    wanted = sorted(studies[n] for n in expected)
    assert found == wanted


def test_uid_list_matching(web: Web, studies: list[str]) -> None:
    answer = search(web, f"/dicomweb/studies?StudyInstanceUID={studies[0]},{studies[2]}")
    assert sorted(value(i, STUDY_UID) for i in answer.json) == sorted([studies[0], studies[2]])


def test_searches_of_one_shape_bind_their_own_values(web: Web, studies: list[str]) -> None:
    """The statement of a shape is built once and reused: each search still matches its own values, at
    every level, and another organisation's search of the same shape sees only its own."""
    for n, patient in enumerate(("P1", "P2", "P3")):
        assert [value(i, STUDY_UID) for i in search(web, f"/dicomweb/studies?PatientID={patient}").json] \
            == [studies[n]]
        series = search(web, f"/dicomweb/studies/{studies[n]}/series?Modality=")
        assert {value(i, STUDY_UID) for i in series.json} == {studies[n]}
    for low, high, expected in (("20260101", "20261231", [0, 1]), ("20250101", "20251231", [2])):
        found = search(web, f"/dicomweb/studies?StudyDate={low}-{high}").json
        assert sorted(value(i, STUDY_UID) for i in found) == sorted(studies[n] for n in expected)
    for first, second in ((1, 2), (0, 1)):
        found = search(web, f"/dicomweb/instances?StudyInstanceUID={studies[first]},{studies[second]}").json
        assert {value(i, STUDY_UID) for i in found} == {studies[first], studies[second]}
    assert search(web, "/dicomweb/studies?PatientID=P1", web.b).json == []


def test_study_results_carry_the_required_attributes_and_counts(web: Web, studies: list[str]) -> None:
    (item,) = search(web, f"/dicomweb/studies?StudyInstanceUID={studies[0]}").json
    for tag in (STUDY_DATE, STUDY_TIME, "00080050", MODALITIES, "00080090", PATIENT_NAME, PATIENT_ID, STUDY_UID,
                "00200010", N_SERIES, N_INSTANCES, RETRIEVE_URL):
        assert tag in item, tag
    assert value(item, MODALITIES) == ["CT", "MR"]
    assert (value(item, N_SERIES), value(item, N_INSTANCES)) == (2, 4)
    assert item[PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}
    assert value(item, RETRIEVE_URL).endswith(f"/dicomweb/studies/{studies[0]}")
    assert list(item) == sorted(item)


def test_series_and_instance_levels(web: Web, studies: list[str]) -> None:
    series = search(web, f"/dicomweb/studies/{studies[0]}/series").json
    assert len(series) == 2 and {value(s, "00080060") for s in series} == {"CT", "MR"}
    assert all(value(s, "00201209") == 2 for s in series)
    mr = search(web, f"/dicomweb/studies/{studies[0]}/series?Modality=MR").json
    (only,) = mr
    instances = search(web, f"/dicomweb/studies/{studies[0]}/series/{value(only, SERIES_UID)}/instances").json
    assert len(instances) == 2
    for tag in ("00080016", SOP_UID, "00200013", "00280010", "00280011", "00280100", RETRIEVE_URL):
        assert tag in instances[0], tag
    assert value(instances[0], "00280010") == 8
    everything = search(web, "/dicomweb/instances?Modality=CT&includefield=PatientName").json
    assert len(everything) == 5 and all(PATIENT_NAME in i for i in everything)
    all_series = search(web, "/dicomweb/series?PatientName=SMITH*").json
    assert [value(s, STUDY_UID) for s in all_series] == [studies[1]]
    assert PATIENT_NAME in all_series[0] and STUDY_DATE in all_series[0]   # across studies: study attributes too


def test_includefield_limit_and_offset(web: Web, studies: list[str]) -> None:
    page = search(web, "/dicomweb/studies?includefield=StudyDescription,00100040&limit=2&offset=1").json
    assert len(page) == 2 and "00081030" in page[0] and "00100040" in page[0]
    assert sorted(value(i, STUDY_UID) for i in page) == sorted(studies)[1:]
    everything = search(web, "/dicomweb/studies?includefield=all").json
    assert "00081030" in everything[0] and "00100030" in everything[0]


def test_fuzzy_matching_is_answered_literally_with_a_warning(web: Web, studies: list[str]) -> None:
    answer = search(web, "/dicomweb/studies?fuzzymatching=true&PatientName=DOE*")
    assert answer.status_code == 200 and len(answer.json) == 2
    assert answer.headers.get_all("Warning") == [FUZZY_WARNING]


def test_no_match_is_200_with_an_empty_array(web: Web, studies: list[str]) -> None:
    answer = search(web, "/dicomweb/studies?PatientID=nobody")
    assert answer.status_code == 200 and answer.json == []


@pytest.mark.parametrize("query", [
    "colour=red", "PatientNme=X", "StudyDate=2026-01-15", "StudyDate=20260115-2026", "StudyInstanceUID=1.2.*",
    "limit=0", "limit=x", "offset=-1", "fuzzymatching=maybe", "includefield=NoSuchThing", "SeriesNumber=1*",
    "Manufacturer=X", "NumberOfStudyRelatedInstances=4", "PatientName=A&PatientName=B",
])
def test_bad_queries_are_400_with_a_clear_message(web: Web, studies: list[str], query: str) -> None:
    answer = search(web, f"/dicomweb/studies?{query}")
    assert answer.status_code == 400
    assert answer.json["detail"]


def test_other_organisations_see_nothing_and_need_the_read_scope(web: Web, studies: list[str]) -> None:
    assert search(web, "/dicomweb/studies", web.b).json == []
    assert search(web, f"/dicomweb/studies/{studies[0]}/series", web.b).json == []
    assert search(web, "/dicomweb/instances", web.b).json == []
    assert web.call(web.reader, "GET", "/dicomweb/studies", scope="xds:query").status_code == 403


def test_what_a_visible_manifest_references_is_shared(web: Web) -> None:
    from datetime import UTC, datetime

    from repository.tables import ManifestReference, StoredDocument

    dataset = make_instance()
    web.ingest(web.a, [dataset])
    with web.database.session() as session:
        for unique_id, restricted in (("2.25.1", True), ("2.25.2", False)):
            session.add(StoredDocument(unique_id=unique_id, sha256="0" * 64, sha1="0" * 40, size=1,
                                       mime_type="application/dicom", submitter_org_id=web.a.organisation_id,
                                       restricted=restricted, stored_at=datetime.now(UTC)))
        session.flush()
        session.add(ManifestReference(manifest_unique_id="2.25.1", study_instance_uid=str(dataset.StudyInstanceUID),
                                      series_instance_uid=str(dataset.SeriesInstanceUID),
                                      sop_instance_uid=str(dataset.SOPInstanceUID),
                                      sop_class_uid=str(dataset.SOPClassUID), retrieve_location_uid="1.2.3"))
    assert search(web, "/dicomweb/studies", web.b).json == []          # only a restricted manifest names it
    with web.database.session() as session:
        session.add(ManifestReference(manifest_unique_id="2.25.2", study_instance_uid=str(dataset.StudyInstanceUID),
                                      series_instance_uid=str(dataset.SeriesInstanceUID),
                                      sop_instance_uid=str(dataset.SOPInstanceUID),
                                      sop_class_uid=str(dataset.SOPClassUID), retrieve_location_uid="1.2.3"))
    (item,) = search(web, "/dicomweb/studies", web.b).json
    assert value(item, STUDY_UID) == str(dataset.StudyInstanceUID)


def test_parse_search_reads_keywords_tags_and_controls() -> None:
    query = parse_search(Level.SERIES, [("00080060", "CT"), ("includefield", "SeriesDescription"),
                                        ("limit", "5000")], study_uid="1.2.3")
    assert [(a.keyword, v) for a, v in query.filters] == [("Modality", "CT")]
    assert query.include == {"Modality", "SeriesDescription"} and query.limit == 1000
    with pytest.raises(BadRequest, match="not supported in a study search"):
        parse_search(Level.STUDY, [("SOPInstanceUID", "1.2.3")])
