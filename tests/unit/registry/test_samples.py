"""Real public XDS.b messages ($XDSHUB_SAMPLES, see shared/samples/README.md) through codec and ITI-42.

Every SubmitObjectsRequest of iti42/, iti41/ (inside the ProvideAndRegister
request) and rad68/ is parsed, re-rendered and read back; then registered,
or refused with the error ITI TF-3 demands. The reason is given per sample.
ITI-41 and RAD-68 bodies reach the registry only through a Document
Repository, which adds hash, size and repositoryUniqueId first
(ITI TF-2b 3.41.4.1.3), so they are registered the way the repository
forwards them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hub.db import Database
from hub.errors import XdsError, XdsErrorList
from hub.security.identity import Caller
from hub.settings import Settings
from registry.ebrim import parse_submit_objects_request, render_submit_objects_request
from registry.model import SubmitObjectsRequest
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import NS_LCM, ErrorCode, SubmissionSetScheme
from tests.conftest import require_samples
from tests.factories.metadata import REPOSITORY, unique_oid
from tests.schema_validation import assert_valid

NOW = datetime(2026, 2, 1, tzinfo=UTC)
META = ErrorCode.REGISTRY_METADATA_ERROR
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
Prepare = Callable[[SubmitObjectsRequest], None]


def as_forwarded_by_repository(request: SubmitObjectsRequest) -> None:
    """What a Document Repository adds before ITI-42 (ITI TF-2b 3.41.4.1.3)."""
    for doc in request.document_entries:
        content = (doc.unique_id or doc.id).encode()
        doc.slots.setdefault("hash", [hashlib.sha1(content).hexdigest()])
        doc.slots.setdefault("size", [str(len(content))])
        doc.slots.setdefault("repositoryUniqueId", [REPOSITORY])


def as_run_by_nist_testkit(request: SubmitObjectsRequest) -> None:
    """The NIST testkit replaces its placeholder uniqueIds by fresh OIDs when it runs a test."""
    as_forwarded_by_repository(request)
    for obj in request.submission_sets:
        for ident in obj.external_identifiers:
            if ident.scheme == SubmissionSetScheme.UNIQUE_ID and not ident.value[:1].isdigit():
                ident.value = unique_oid()


def as_is(request: SubmitObjectsRequest) -> None:
    """Registered exactly as sent."""


@dataclass(frozen=True)
class Sample:
    path: str
    prepare: Prepare
    refused_with: ErrorCode | None     # None: registers
    why: str                           # the reason, in the words of the standard
    fragment: str = ""                 # in one of the error messages (refusals)


SAMPLES = [
    Sample("iti42/ihe-RegisterDocumentSet-request-soap.xml", as_is, META,
           "an ITI-42 request without hash, size and repositoryUniqueId (required of stable entries, ITI TF-3 "
           "Table 4.3.1-3), associationType 'HasMember' instead of the ebRIM 3.0 URN (ITI TF-3 4.2.2), and "
           "sourceId '3670984664' is not an OID (ITI TF-3 4.2.3.3.12)", "slot hash is required"),
    Sample("iti42/ipf-SubmitObjectsRequest_ebrs30.xml", as_is, META,
           "IPF test data: several identificationScheme/classificationScheme UUIDs contain a space, so patientId, "
           "SubmissionSet uniqueId and contentTypeCode are missing (ITI TF-3 4.2.3); it also uses IsSnapshotOf "
           "(On-Demand Documents option, not supported by this registry)", "patientId is required"),
    Sample("iti41/ihe-PnR-request-soap.xml", as_forwarded_by_repository, META,
           "same metadata as the IHE ITI-42 example: 'HasMember' short form and non-OID sourceId",
           "sourceId '3670984664' is not an OID"),
    Sample("iti41/nist-soap-pnr.xml", as_forwarded_by_repository, None,
           "complete XDS.b metadata with two documents; registers once the repository added hash/size"),
    Sample("rad68/nist-xdsi-metadata-IDCDEPT001-a.xml", as_is, META,
           "testkit template: SubmissionSet uniqueId is the placeholder 'SubmissionSet01', not an OID "
           "(ITI TF-3 4.2.3.3.12)", "is not an OID"),
    Sample("rad68/nist-xdsi-metadata-IDCDEPT001-a.xml", as_run_by_nist_testkit, None,
           "the XDS-I.b KOS manifest (RAD TF-3 4.68) registers once the testkit filled in its uniqueIds"),
    Sample("rad68/nist-xdsi-metadata-evaluate.xml", as_forwarded_by_repository, META,
           "expected-metadata template: the entry has a urn:uuid id but two of its nested classifications "
           "(anatomic region, modality) still classify 'Document01' (ITI TF-3 4.2.3.1: a nested Classification "
           "classifies its parent); the rest is a complete KOS manifest entry", "not its parent object"),
]


def sample_ids() -> list[str]:
    return [f"{Path(s.path).stem}-{s.prepare.__name__}" for s in SAMPLES]


def submit_objects(path: Path) -> etree._Element:
    root = etree.parse(str(path), PARSER).getroot()
    found = next(root.iter(f"{{{NS_LCM}}}SubmitObjectsRequest"), None)
    assert found is not None, f"{path} holds no SubmitObjectsRequest"
    return found


@pytest.fixture
def samples() -> Path:
    return require_samples()


@pytest.fixture
def caller(organisation_factory: Callable[..., int]) -> Caller:
    org = organisation_factory("Samples", "1.3.6.1.4.1.21367.2026.5")
    return Caller(org, "1.3.6.1.4.1.21367.2026.5", "Samples", "samples", "00" * 32)


def test_every_submission_sample_is_listed(samples: Path) -> None:
    present = {str(p.relative_to(samples)) for d in ("iti42", "iti41", "rad68") for p in (samples / d).glob("*.xml")
               if next(etree.parse(str(p), PARSER).getroot().iter(f"{{{NS_LCM}}}SubmitObjectsRequest"), None)
               is not None}
    assert present == {s.path for s in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_ids())
def test_sample_parses_and_round_trips(samples: Path, sample: Sample) -> None:
    request = parse_submit_objects_request(submit_objects(samples / sample.path))
    assert request.document_entries and request.submission_sets
    rendered = render_submit_objects_request(request)
    assert_valid(rendered)
    assert parse_submit_objects_request(rendered) == request


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_ids())
def test_sample_registers_or_is_refused_as_the_standard_demands(
        samples: Path, sample: Sample, database: Database, caller: Caller, settings: Settings) -> None:
    def register() -> None:
        request = parse_submit_objects_request(submit_objects(samples / sample.path))
        sample.prepare(request)
        with database.session() as session:
            register_document_set(session, request, caller, settings, now=NOW)

    if sample.refused_with is None:
        register()
        return
    with pytest.raises((XdsError, XdsErrorList)) as caught:
        register()
    errors: list[XdsError] = (caught.value.errors if isinstance(caught.value, XdsErrorList)
                              else [caught.value])  # type: ignore[list-item]
    assert errors[0].code == sample.refused_with, sample.why
    assert any(sample.fragment in e.message for e in errors), [e.message for e in errors]


def _leaf_class_samples(samples: Path) -> Iterator[etree._Element]:
    for name in ("iti18/ihe-StoredQuery-response-soap.xml", "iti18/nist-sq-resp-lc.xml"):
        yield from etree.parse(str(samples / name), PARSER).getroot().iter(
            "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}RegistryObjectList")


def test_leaf_class_responses_read_back(samples: Path) -> None:
    """LeafClass lists of ITI-18 responses read with the same object parser (used by federation)."""
    from registry.ebrim import parse_object_list, render_objects

    for object_list in _leaf_class_samples(samples):
        objects, _ = parse_object_list(object_list)
        assert objects
        for element in render_objects(objects):
            assert_valid(element)
