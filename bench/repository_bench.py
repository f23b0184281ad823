"""Repository benchmark: ITI-41 throughput, ITI-43 / RAD-69 retrieve speed and server memory, over mutual TLS.

Starts a real `xdshub serve` on loopback (SQLite, local blob folder), then

1. ITI-41: --documents documents of --document-mb MiB each, provided by
   --clients concurrent clients as MTOM (documents/s and MB/s);
2. ITI-43: each of --retrieve-count documents retrieved one per request; the
   client reads the MTOM stream and discards it (MB/s);
3. RAD-69: a study of --study-mb MiB (instances of --instance-mb MiB, put in
   with `xdshub import`) retrieved in one request, while the server's resident
   memory (gunicorn master and workers, from /proc) is sampled every 20 ms;
4. the raw read speed of the same blob files (1 MiB reads): the
   retrieve/raw ratio is the figure. Steps 2-4 run twice: with the blobs in
   the page cache ("warm") and with them evicted first ("cold",
   posix_fadvise DONTNEED), so the disk is read as on a busy server.

    .venv/bin/python bench/repository_bench.py                     # the figures in bench/README.md
    .venv/bin/python bench/repository_bench.py --study-mb 100 --documents 20   # a quick run

Prints one JSON object; the figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hubproc import HubProcess, free_port, process_tree, xdshub  # noqa: E402
from hub.client import HubClient  # noqa: E402
from hub.soap.envelope import render_envelope, serialize  # noqa: E402
from hub.soap.mtom import render_mtom  # noqa: E402
from registry.builders import DocumentSpec, document_entry, has_member, submission_set  # noqa: E402
from registry.model import SubmitObjectsRequest  # noqa: E402
from repository.consumer import Outgoing, imaging_request, provide  # noqa: E402
from repository.model import DocumentRequest  # noqa: E402
from repository.vocabulary import ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING  # noqa: E402
from repository.xdsb import render_imaging_request, render_retrieve_request  # noqa: E402
from tests.factories.streams import MIB, PatternStream, pattern_sha1  # noqa: E402

ORG_OID = "1.3.6.1.4.1.21367.2026.900"
REPOSITORY = "1.3.6.1.4.1.21367.2026.1.1"
PATIENT = "BENCH0000001^^^&1.3.6.1.4.1.21367.2026.901&ISO"


def one_document(size: int, seed: int) -> tuple[SubmitObjectsRequest, str, str]:
    sha1 = pattern_sha1(size, seed)
    uid = f"2.25.{uuid.uuid4().int}"
    entry = document_entry(DocumentSpec(unique_id=uid, patient_id=PATIENT, hash=sha1, size=size,
                                        repository_unique_id=REPOSITORY, mime_type="application/octet-stream"))
    package = submission_set(f"2.25.{uuid.uuid4().int}", PATIENT, ORG_OID, "20260101120000")
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)]), entry.id, uid


def bench_provide(hub: HubProcess, bundle: Path, count: int, size: int, clients: int) -> tuple[dict, list[str]]:
    local = threading.local()

    def client() -> HubClient:
        if not hasattr(local, "client"):
            local.client = HubClient(bundle, base_url=hub.url, timeout=600)
        return local.client

    def one(seed: int) -> str:
        submission, entry_id, uid = one_document(size, seed)
        answer = provide(client(), submission, {entry_id: Outgoing("application/octet-stream", size,
                                                                   lambda: PatternStream(size, seed))})  # type: ignore[arg-type,return-value]
        if answer.status != 200 or not answer.body.get("status", "").endswith("Success"):
            raise RuntimeError(f"provide failed: HTTP {answer.status}")
        return uid

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        uids = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    return {"documents": count, "document_mib": size / MIB, "clients": clients, "seconds": round(elapsed, 2),
            "documents_per_s": round(count / elapsed, 1), "mb_per_s": round(count * size / MIB / elapsed, 1)}, uids


def post_and_drain(client: HubClient, path: str, action: str, body: object) -> int:
    """POST a SOAP request and read the (MTOM) answer, discarding it; answer the bytes received."""
    envelope = serialize(render_envelope(action, body, to=client.base_url + path))  # type: ignore[arg-type]
    message = render_mtom(envelope, action, [])
    response = client.http.post(client.base_url + path, data=b"".join(message.chunks()), stream=True,
                                headers={"Content-Type": message.content_type,
                                         "Authorization": f"Bearer {client.token('xds:retrieve')}"},
                                timeout=600)
    received = 0
    with response:
        if response.status_code != 200:
            raise RuntimeError(f"retrieve answered HTTP {response.status_code}")
        for chunk in response.iter_content(MIB):
            received += len(chunk)
    return received


def bench_retrieve(hub: HubProcess, bundle: Path, uids: list[str]) -> dict:
    client = HubClient(bundle, base_url=hub.url, timeout=600)
    received, started = 0, time.perf_counter()
    for uid in uids:
        received += post_and_drain(client, "/xds/repository", ACTION_RETRIEVE,
                                   render_retrieve_request([DocumentRequest(REPOSITORY, uid)]))
    elapsed = time.perf_counter() - started
    return {"documents": len(uids), "mib": round(received / MIB, 1), "mb_per_s": round(received / MIB / elapsed, 1)}


def memory_kib(pid: int, field: str, source: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def server_memory(root: int) -> tuple[int, int, int]:
    """(largest RSS of one server process, PSS of all of them together, PSS of the web server alone), bytes.

    RSS counts pages shared between the master and its workers once per process;
    PSS splits them, so the sum is the memory the whole server really holds. The
    web server is gunicorn's master and workers; `xdshub serve` also runs its
    companion commands (DIMSE SCP, quiet-period publisher) as processes of their own.
    """
    pids = process_tree(root)
    companions = {pid for pid in pids if _is_companion(pid)}
    largest = max(memory_kib(pid, "VmRSS", "status") for pid in pids if pid not in companions)
    pss = {pid: memory_kib(pid, "Pss", "smaps_rollup") for pid in pids}
    return largest * 1024, sum(pss.values()) * 1024, sum(v for pid, v in pss.items() if pid not in companions) * 1024


def _is_companion(pid: int) -> bool:
    try:
        return b"from hub.cli import main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def make_study(folder: Path, study_mb: int, instance_mb: int) -> tuple[str, dict[str, list[str]]]:
    from pydicom.uid import generate_uid

    from tests.factories.dicom import make_instance, write_instance

    study_uid: str = generate_uid()
    series: dict[str, list[str]] = {}
    series_uids = [generate_uid() for _ in range(4)]
    side = int((instance_mb * MIB / 2) ** 0.5)
    count = max(1, study_mb // instance_mb)
    for n in range(count):
        series_uid = series_uids[n % len(series_uids)]
        dataset = make_instance(study_uid=study_uid, series_uid=series_uid, rows=side, columns=side,
                                patient_id="BENCH0000001", issuer="1.3.6.1.4.1.21367.2026.901")
        write_instance(dataset, folder / f"{n:05d}.dcm")
        series.setdefault(series_uid, []).append(str(dataset.SOPInstanceUID))
    return study_uid, series


def bench_imaging(hub: HubProcess, bundle: Path, study_uid: str, series: dict[str, list[str]]) -> dict:
    client = HubClient(bundle, base_url=hub.url, timeout=1200)
    assert hub.proc is not None
    baseline = server_memory(hub.proc.pid)
    peak, stop = list(baseline), threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = server_memory(hub.proc.pid)  # type: ignore[union-attr]
            peak[:] = [max(a, b) for a, b in zip(peak, now, strict=True)]
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    received = post_and_drain(client, "/xds/imaging", ACTION_RETRIEVE_IMAGING,
                              render_imaging_request(imaging_request(REPOSITORY, study_uid, series)))
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    return {"instances": sum(len(v) for v in series.values()), "mib": round(received / MIB, 1),
            "mb_per_s": round(received / MIB / elapsed, 1),
            "process_rss_mib_idle": round(baseline[0] / MIB, 1), "process_rss_mib_peak": round(peak[0] / MIB, 1),
            "server_pss_mib_idle": round(baseline[1] / MIB, 1), "server_pss_mib_peak": round(peak[1] / MIB, 1),
            "web_server_pss_mib_idle": round(baseline[2] / MIB, 1), "web_server_pss_mib_peak": round(peak[2] / MIB, 1)}


def raw_read(paths: list[Path]) -> dict:
    total, started = 0, time.perf_counter()
    for path in paths:
        with path.open("rb", buffering=0) as stream:
            while chunk := stream.read(MIB):
                total += len(chunk)
    elapsed = time.perf_counter() - started
    return {"mib": round(total / MIB, 1), "mb_per_s": round(total / MIB / elapsed, 1)}


def evict(paths: list[Path]) -> None:
    """Drop these files from the page cache (posix_fadvise DONTNEED; clean pages need no privilege)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def blob_paths(data_dir: Path, shas: list[str]) -> list[Path]:
    return [data_dir / "blobs" / s[:2] / s[2:4] / s for s in shas]


def shas_of(data_dir: Path, table: str, column: str, values: list[str]) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{data_dir / 'hub.db'}")
    with engine.connect() as conn:
        rows = dict(conn.execute(text(f"SELECT {column}, sha256 FROM {table}")).all())
    engine.dispose()
    return [rows[v] for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--document-mb", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--retrieve-count", type=int, default=50)
    parser.add_argument("--study-mb", type=int, default=1024)
    parser.add_argument("--instance-mb", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xdshub-repo-bench-") as tmp:
        data_dir = Path(tmp) / "var"
        port = free_port()
        env = {**os.environ, "XDSHUB_DATA_DIR": str(data_dir)}
        xdshub("init", "--data-dir", str(data_dir), env=env)
        bundle = Path(tmp) / "bundle"
        xdshub("org", "add", "Bench Org", "--oid", ORG_OID, "--data-dir", str(data_dir), "--out", str(bundle),
               env=env)
        study_dir = Path(tmp) / "study"
        study_dir.mkdir()
        study_uid, series = make_study(study_dir, args.study_mb, args.instance_mb)
        xdshub("import", str(study_dir), "--org", ORG_OID, "--data-dir", str(data_dir), env=env)
        instance_uids = [uid for uids_ in series.values() for uid in uids_]
        study_paths = blob_paths(data_dir, shas_of(data_dir, "dicom_instances", "sop_instance_uid", instance_uids))
        results: dict[str, dict] = {}
        with HubProcess(data_dir, port, env={"XDSHUB_DATA_DIR": str(data_dir)}) as hub:
            results["iti41_provide"], uids = bench_provide(hub, bundle, args.documents, args.document_mb * MIB,
                                                           args.clients)
            document_paths = blob_paths(data_dir, shas_of(data_dir, "repository_documents", "unique_id",
                                                          uids[:args.retrieve_count]))
            for cache in ("warm", "cold"):
                # warm: the blobs in the page cache (just written or read); cold: evicted first, read from disk
                prepare = evict if cache == "cold" else raw_read
                prepare(document_paths)
                retrieved = bench_retrieve(hub, bundle, uids[:args.retrieve_count])
                prepare(study_paths)
                imaging = bench_imaging(hub, bundle, study_uid, series)
                prepare(document_paths)
                document_raw = raw_read(document_paths)
                prepare(study_paths)
                study_raw = raw_read(study_paths)
                results[f"iti43_retrieve_{cache}"] = {
                    **retrieved, "raw_read_mb_per_s": document_raw["mb_per_s"],
                    "ratio_to_raw": round(retrieved["mb_per_s"] / document_raw["mb_per_s"], 3)}
                results[f"rad69_retrieve_study_{cache}"] = {
                    **imaging, "raw_read_mb_per_s": study_raw["mb_per_s"],
                    "ratio_to_raw": round(imaging["mb_per_s"] / study_raw["mb_per_s"], 3)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
