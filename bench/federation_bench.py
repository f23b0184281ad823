"""Federation benchmark (issue 7): cross-community query latency and retrieve throughput through a forwarding hub.

Three real `xdshub serve` processes on loopback at the default settings
(SQLite, file blob store, 2 workers x 8 threads, mutual TLS and OAuth on
every call), each its own community, set up as tests/functional/test_federation.py
does: hubs A and B each register hub C as an organisation (`xdshub org add`,
scopes xds:query xds:retrieve), and C adds both as peers (`xdshub peer add`).
Patient ids are in the open affinity domain (no links needed). Before anything
is timed:

- at A, --documents-per-query DocumentEntries (ITI-42) of patient LOCAL;
- of patient FED, half of that count at A and half at B (none at C);
- at A, --documents documents of --size-mb MiB (ITI-41) and a study of
  --instances DICOM instances of about --instance-mb MiB (`xdshub import`,
  then published so that C's organisation at A may see it).

Then, with one consumer organisation at A and one at C:

1. ITI-18 FindDocuments (LeafClass, Approved), --queries after a warm-up,
   local and cross-community interleaved: "local" is A's consumer asking A
   for LOCAL (no peers at A); "cross" is C's consumer asking C for FED, which
   C answers by asking A and B with ITI-38 in parallel (the same number of
   entries in the answer). Two diagnostics show where C's time goes: an
   ITI-38 sent straight to A with C's bundle over a kept connection (what A
   takes to answer one peer), and an ITI-18 at A from a new client each time
   (TLS handshake, token request, query: what C pays per peer per query).
2. ITI-43, concurrency 1, one document per request, the answer read to the
   end: "direct" is A's consumer at A; "through C" is C's consumer at C with
   HomeCommunityId = A's community (C sends ITI-39 to A, spools the answer,
   streams it on). Then RAD-69 for the whole study the same two ways (RAD-75
   from C to A). --rounds rounds, direct and through C alternating; the
   median round is reported. Blobs are in the page cache (just written).

    .venv/bin/python bench/federation_bench.py                  # the figures in bench/README.md
    .venv/bin/python bench/federation_bench.py --documents 4 --size-mb 2 --queries 20 --rounds 1   # a quick run

Prints a table, then one JSON object with every figure and the 1-minute load
average before and after the run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hubproc import HubProcess, free_port, text_table, xdshub  # noqa: E402
from hub.client import HubClient  # noqa: E402
from hub.federation.xca import ACTION_CROSS_GATEWAY_QUERY, QUERY_PATH  # noqa: E402
from hub.setup import initialise  # noqa: E402
from hub.soap.envelope import render_envelope, serialize  # noqa: E402
from hub.soap.mtom import render_mtom  # noqa: E402
from registry.builders import DocumentSpec, document_entry, has_member, submission_set  # noqa: E402
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request  # noqa: E402
from registry.model import StoredQuery, SubmitObjectsRequest  # noqa: E402
from registry.vocabulary import (  # noqa: E402
    ACTION_REGISTER,
    ACTION_STORED_QUERY,
    AvailabilityStatus,
    ResponseStatus,
    ReturnType,
    StoredQueryId,
)
from repository.consumer import Outgoing, provide, retrieve  # noqa: E402
from repository.model import DocumentRequest, ImagingRequest, SeriesRequest, StudyRequest  # noqa: E402
from repository.vocabulary import ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING  # noqa: E402
from repository.xdsb import render_imaging_request, render_retrieve_request  # noqa: E402
from tests.factories.dicom import make_instance, write_instance  # noqa: E402
from tests.factories.streams import MIB, PatternStream, pattern_sha1  # noqa: E402

SITES = "abc"
COMMUNITY = {s: f"urn:oid:1.3.6.1.4.1.21367.2026.9{n}0" for n, s in enumerate(SITES, start=1)}
REPOSITORY = {s: f"1.3.6.1.4.1.21367.2026.9{n}0.1" for n, s in enumerate(SITES, start=1)}
SOURCE_OID = {s: f"1.3.6.1.4.1.21367.2026.9{n}1" for n, s in enumerate(SITES, start=1)}
CONSUMER_OID = {s: f"1.3.6.1.4.1.21367.2026.9{n}2" for n, s in enumerate(SITES, start=1)}
HUB_C_OID = "1.3.6.1.4.1.21367.2026.939"
ISSUER = "1.3.6.1.4.1.21367.2026.908"
RUN = uuid.uuid4().hex[:6].upper()
PATIENT = {kind: f"{kind}{RUN}^^^&{ISSUER}&ISO" for kind in ("LOCAL", "FED", "DOCS")}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
WARM_UP = 5


@dataclass
class Site:
    name: str
    data_dir: Path
    port: int
    source: Path            # client bundle of the organisation that publishes there
    consumer: Path          # client bundle of a consumer organisation there

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def make_site(root: Path, name: str) -> Site:
    """An initialised hub of its own community with a source and a consumer organisation (not yet serving)."""
    port = free_port()
    data_dir = root / name
    initialise(data_dir, port=port, home_community_id=COMMUNITY[name], repository_unique_id=REPOSITORY[name],
               dimse_port=0)
    site = Site(name, data_dir, port, root / f"source-{name}", root / f"consumer-{name}")
    xdshub("org", "add", f"Source {name.upper()}", "--oid", SOURCE_OID[name], "--data-dir", str(data_dir),
           "--out", str(site.source))
    xdshub("org", "add", f"Consumer {name.upper()}", "--oid", CONSUMER_OID[name], "--data-dir", str(data_dir),
           "--out", str(site.consumer), "--scopes", "xds:query xds:retrieve")
    return site


def federate(root: Path, peers: list[Site], gateway: Site) -> None:
    """Each peer registers the gateway hub as an organisation; the gateway adds the peer from that bundle."""
    for peer in peers:
        bundle = root / f"{gateway.name}-at-{peer.name}"
        xdshub("org", "add", f"Hub {gateway.name.upper()}", "--oid", HUB_C_OID, "--data-dir", str(peer.data_dir),
               "--out", str(bundle), "--scopes", "xds:query xds:retrieve")
        xdshub("peer", "add", f"hub-{peer.name}", "--community", COMMUNITY[peer.name], "--bundle", str(bundle),
               "--data-dir", str(gateway.data_dir))


def register(client: HubClient, site: str, patient_id: str, count: int) -> None:
    """ITI-42: `count` DocumentEntries of the patient in one submission (metadata only; for queries)."""
    entries = []
    for _ in range(count):
        uid = f"2.25.{uuid.uuid4().int}"
        entries.append(document_entry(DocumentSpec(unique_id=uid, patient_id=patient_id, hash="0" * 40, size=1,
                                                   repository_unique_id=REPOSITORY[site])))
    package = submission_set(f"2.25.{uuid.uuid4().int}", patient_id, SOURCE_OID[site], "20260101120000")
    request = SubmitObjectsRequest([package, *entries, *[has_member(package.id, e.id) for e in entries]])
    answer = client.soap("/xds/registry", ACTION_REGISTER, render_submit_objects_request(request))
    if answer.body.get("status") != ResponseStatus.SUCCESS.value:
        raise RuntimeError(f"ITI-42 at {site} failed: {serialize(answer.envelope)[:500]!r}")


def provide_documents(client: HubClient, count: int, size: int) -> list[tuple[str, str]]:
    """ITI-41 at A: `count` documents of `size` bytes, one per submission; their (uniqueId, SHA-1)."""
    documents = []
    for seed in range(count):
        sha1, uid = pattern_sha1(size, seed), f"2.25.{uuid.uuid4().int}"
        entry = document_entry(DocumentSpec(unique_id=uid, patient_id=PATIENT["DOCS"], hash=sha1, size=size,
                                            repository_unique_id=REPOSITORY["a"],
                                            mime_type="application/octet-stream"))
        package = submission_set(f"2.25.{uuid.uuid4().int}", PATIENT["DOCS"], SOURCE_OID["a"], "20260101120000")
        outgoing = Outgoing("application/octet-stream", size, partial(PatternStream, size, seed))  # type: ignore[arg-type]
        answer = provide(client, SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)]),
                         {entry.id: outgoing})
        if answer.body.get("status") != ResponseStatus.SUCCESS.value:
            raise RuntimeError(f"ITI-41 at A failed: {serialize(answer.envelope)[:500]!r}")
        documents.append((uid, sha1))
    return documents


def write_study(folder: Path, count: int, instance_mb: float) -> tuple[str, dict[str, list[str]], int]:
    """DICOM files of one study (two series) for `xdshub import`: (study UID, series -> SOP UIDs, bytes)."""
    folder.mkdir()
    side = int((instance_mb * MIB / 2) ** 0.5)
    study_uid, series_uids = f"2.25.{uuid.uuid4().int}", [f"2.25.{uuid.uuid4().int}" for _ in range(2)]
    series: dict[str, list[str]] = {}
    for n in range(count):
        dataset = make_instance(study_uid=study_uid, series_uid=series_uids[n % 2], rows=side, columns=side,
                                patient_id=f"STUDY{RUN}", issuer=ISSUER, instance_number=n + 1)
        write_instance(dataset, folder / f"{n:04d}.dcm")
        series.setdefault(series_uids[n % 2], []).append(str(dataset.SOPInstanceUID))
    return study_uid, series, sum(f.stat().st_size for f in folder.iterdir())


def find_documents(patient_id: str) -> Any:
    parameters = {"$XDSDocumentEntryPatientId": [[f"'{patient_id}'"]],
                  "$XDSDocumentEntryStatus": [[f"('{AvailabilityStatus.APPROVED.value}')"]]}
    return render_adhoc_query_request(StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, ReturnType.LEAF_CLASS.value,
                                                  parameters))


class PartialAnswer(RuntimeError):
    """A query answered PartialSuccess: a peer counted as unavailable (counted, not timed)."""


def timed_query(client: HubClient, path: str, action: str, body: Any, expected: int) -> float:
    """Milliseconds from request to parsed answer; the answer must hold `expected` entries, with no error."""
    started = time.perf_counter()
    answer = client.soap(path, action, body, scope="xds:query")
    elapsed = (time.perf_counter() - started) * 1000
    found = len(answer.body.findall("{*}RegistryObjectList/{*}ExtrinsicObject"))
    status = answer.body.get("status")
    if status != ResponseStatus.SUCCESS.value or found != expected:
        errors = [e.get("codeContext", "") for e in answer.body.findall("{*}RegistryErrorList/{*}RegistryError")]
        failure = PartialAnswer if status == ResponseStatus.PARTIAL_SUCCESS.value else RuntimeError
        raise failure(f"{client.base_url}{path}: {found} entries of {expected}, status {status}, errors {errors}")
    return elapsed


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)}


def bench_queries(a: Site, c: Site, bundle_c_at_a: Path, per_query: int, count: int) -> dict[str, Any]:
    local_body, cross_body = find_documents(PATIENT["LOCAL"]), find_documents(PATIENT["FED"])
    with ExitStack() as stack:
        at_a = stack.enter_context(HubClient(a.consumer, base_url=a.url))
        at_c = stack.enter_context(HubClient(c.consumer, base_url=c.url))
        peer = stack.enter_context(HubClient(bundle_c_at_a, base_url=a.url))   # C's own bundle at A
        runs: dict[str, Callable[[], float]] = {
            "local": lambda: timed_query(at_a, "/xds/registry", ACTION_STORED_QUERY, local_body, per_query),
            "cross": lambda: timed_query(at_c, "/xds/registry", ACTION_STORED_QUERY, cross_body, per_query),
            "iti38_at_a": lambda: timed_query(peer, QUERY_PATH, ACTION_CROSS_GATEWAY_QUERY, cross_body,
                                              per_query // 2),
        }

        tokens: list[float] = []

        def new_client_at_a() -> float:
            started = time.perf_counter()
            with HubClient(bundle_c_at_a, base_url=a.url) as fresh:
                fresh.token("xds:query")        # the TLS handshake happens here, with the token request
                tokens.append((time.perf_counter() - started) * 1000)
                timed_query(fresh, QUERY_PATH, ACTION_CROSS_GATEWAY_QUERY, cross_body, per_query // 2)
            return (time.perf_counter() - started) * 1000

        runs["new_client_at_a"] = new_client_at_a
        times: dict[str, list[float]] = {name: [] for name in runs}
        partial: list[str] = []
        for n in range(WARM_UP + count):
            for name, run in runs.items():
                try:
                    elapsed = run()
                except PartialAnswer as exc:
                    partial.append(f"{name}: {exc}")
                    continue
                if n >= WARM_UP:
                    times[name].append(elapsed)
        times["new_client_handshake_and_token"] = tokens[WARM_UP:]
    figures: dict[str, Any] = {name: latency(values) for name, values in times.items()}
    figures["partial_answers"] = partial      # queries a peer failed (not in the latencies)
    figures["cross_vs_local"] = {key: round(figures["cross"][key] / figures["local"][key], 2)
                                 for key in ("p50_ms", "p95_ms")}
    return figures


def drain(client: HubClient, path: str, action: str, body: Any, at_least: int) -> int:
    """POST a retrieve and read its MTOM answer to the end, discarding it; the bytes received."""
    envelope = serialize(render_envelope(action, body, to=client.base_url + path))
    message = render_mtom(envelope, action, [])
    response = client.http.post(client.base_url + path, data=b"".join(message.chunks()), stream=True, timeout=600,
                                headers={"Content-Type": message.content_type,
                                         "Authorization": f"Bearer {client.token('xds:retrieve')}"})
    with response:
        received = sum(len(chunk) for chunk in response.iter_content(MIB))
    if response.status_code != 200 or received < at_least:
        raise RuntimeError(f"{client.base_url}{path} answered HTTP {response.status_code} with {received} bytes, "
                           f"expected at least {at_least}")
    return received


def imaging(study_uid: str, series: dict[str, list[str]], home: str | None) -> ImagingRequest:
    return ImagingRequest((StudyRequest(study_uid, tuple(
        SeriesRequest(series_uid, tuple(DocumentRequest(REPOSITORY["a"], uid, home) for uid in uids))
        for series_uid, uids in series.items())),), (EXPLICIT_LE,))


def bench_retrieve(a: Site, c: Site, documents: list[tuple[str, str]], size: int, study: tuple[str, dict, int],
                   rounds: int) -> dict[str, Any]:
    study_uid, series, study_bytes = study
    with HubClient(a.consumer, base_url=a.url, timeout=600) as at_a, \
            HubClient(c.consumer, base_url=c.url, timeout=600) as at_c:
        # Warm-up and a byte check: the first document through C, its SHA-1 as provided.
        first, sha1 = documents[0]
        got = retrieve(at_c, [DocumentRequest(REPOSITORY["a"], first, COMMUNITY["a"])])
        try:
            if got.status != ResponseStatus.SUCCESS.value or got.files[first].sha1 != sha1:
                raise RuntimeError(f"ITI-43 through C: {got.status} {got.error_codes}")
        finally:
            got.close()
        drain(at_a, "/xds/repository", ACTION_RETRIEVE, render_retrieve_request([DocumentRequest(
            REPOSITORY["a"], first)]), size)
        ways = {"direct": (at_a, None), "through_c": (at_c, COMMUNITY["a"])}
        rates: dict[str, list[float]] = {f"{kind}_{way}": [] for kind in ("iti43", "rad69") for way in ways}
        for _ in range(rounds):
            for way, (client, home) in ways.items():
                started, received = time.perf_counter(), 0
                for uid, _sha1 in documents:
                    received += drain(client, "/xds/repository", ACTION_RETRIEVE, render_retrieve_request(
                        [DocumentRequest(REPOSITORY["a"], uid, home)]), size)
                rates[f"iti43_{way}"].append(received / MIB / (time.perf_counter() - started))
            for way, (client, home) in ways.items():
                started = time.perf_counter()
                received = drain(client, "/xds/imaging", ACTION_RETRIEVE_IMAGING,
                                 render_imaging_request(imaging(study_uid, series, home)), study_bytes)
                rates[f"rad69_{way}"].append(received / MIB / (time.perf_counter() - started))
    figures: dict[str, Any] = {f"{name}_mib_per_s": round(statistics.median(values), 1)
                               for name, values in rates.items()}
    figures["rounds_mib_per_s"] = {name: [round(v, 1) for v in values] for name, values in rates.items()}
    for kind in ("iti43", "rad69"):
        figures[f"{kind}_through_vs_direct"] = round(
            figures[f"{kind}_through_c_mib_per_s"] / figures[f"{kind}_direct_mib_per_s"], 2)
    return figures


def publish(site: Site, study_uid: str) -> None:
    with HubClient(site.source, base_url=site.url) as source:
        answer = source.api("POST", f"/api/studies/{study_uid}/publish", scope="xds:register")
    if answer.status_code != 201:
        raise RuntimeError(f"publishing the study at {site.name} answered {answer.status_code}: {answer.text[:300]}")


def table(result: dict[str, Any]) -> str:
    q, r = result["query"], result["retrieve"]
    rows = [
        (f"ITI-18 FindDocuments, {result['documents_per_query']} entries, p50 / p95 ms",
         f"{q['local']['p50_ms']} / {q['local']['p95_ms']}", f"{q['cross']['p50_ms']} / {q['cross']['p95_ms']}",
         f"{q['cross_vs_local']['p50_ms']} / {q['cross_vs_local']['p95_ms']}"),
        (f"ITI-43, {result['documents']} x {result['size_mb']} MiB, c1, MiB/s",
         str(r["iti43_direct_mib_per_s"]), str(r["iti43_through_c_mib_per_s"]), str(r["iti43_through_vs_direct"])),
        (f"RAD-69, {result['instances']} instances ({result['study_mib']} MiB), MiB/s",
         str(r["rad69_direct_mib_per_s"]), str(r["rad69_through_c_mib_per_s"]), str(r["rad69_through_vs_direct"])),
        ("  ITI-38 at A, C's bundle, kept connection, p50 / p95 ms",
         f"{q['iti38_at_a']['p50_ms']} / {q['iti38_at_a']['p95_ms']}", "", ""),
        ("  ITI-38 at A, new client each (TLS + token + query), p50 / p95 ms",
         f"{q['new_client_at_a']['p50_ms']} / {q['new_client_at_a']['p95_ms']}", "", ""),
        ("    of which TLS handshake + token request, p50 / p95 ms",
         f"{q['new_client_handshake_and_token']['p50_ms']} / {q['new_client_handshake_and_token']['p95_ms']}", "",
         ""),
    ]
    return (text_table(("direct at A", "through C", "C / A"), rows)
            + f"\nqueries answered PartialSuccess (a peer failed; not timed): {len(q['partial_answers'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=8, help="documents retrieved with ITI-43")
    parser.add_argument("--size-mb", type=float, default=4, help="MiB of each of those documents")
    parser.add_argument("--documents-per-query", type=int, default=20, help="entries each FindDocuments answers")
    parser.add_argument("--queries", type=int, default=50, help="timed queries of each kind, after a warm-up")
    parser.add_argument("--instances", type=int, default=16, help="DICOM instances of the RAD-69 study")
    parser.add_argument("--instance-mb", type=float, default=1, help="MiB of each instance (about)")
    parser.add_argument("--rounds", type=int, default=3, help="retrieve rounds; the median is reported")
    args = parser.parse_args()
    size = int(args.size_mb * MIB)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="xdshub-federation-bench-"))
    try:
        sites = {name: make_site(root, name) for name in SITES}
        a, b, c = sites["a"], sites["b"], sites["c"]
        federate(root, [a, b], c)
        study = write_study(root / "study", args.instances, args.instance_mb)
        xdshub("import", str(root / "study"), "--org", SOURCE_OID["a"], "--no-progress", "--data-dir",
               str(a.data_dir))
        with ExitStack() as stack:
            for site in sites.values():
                stack.enter_context(HubProcess(site.data_dir, site.port))
            with HubClient(a.source, base_url=a.url, timeout=600) as source_a, \
                    HubClient(b.source, base_url=b.url) as source_b:
                register(source_a, "a", PATIENT["LOCAL"], args.documents_per_query)
                register(source_a, "a", PATIENT["FED"], args.documents_per_query // 2)
                register(source_b, "b", PATIENT["FED"], args.documents_per_query - args.documents_per_query // 2)
                documents = provide_documents(source_a, args.documents, size)
            publish(a, study[0])
            setup_seconds = time.perf_counter() - started
            query = bench_queries(a, c, root / "c-at-a", args.documents_per_query, args.queries)
            retrieved = bench_retrieve(a, c, documents, size, study, args.rounds)
        result = {
            "documents_per_query": args.documents_per_query, "queries": args.queries,
            "documents": args.documents, "size_mb": args.size_mb, "instances": args.instances,
            "study_mib": round(study[2] / MIB, 1), "rounds": args.rounds,
            "setup_seconds": round(setup_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1),
            "query": query, "retrieve": retrieved,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],   # the machine is shared
        }
        print(table(result))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
