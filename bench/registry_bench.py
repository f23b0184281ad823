"""Registry benchmark: ITI-42 throughput and ITI-18 latency over SOAP, mutual TLS and OAuth.

Starts a real `xdshub serve` on loopback (SQLite, and PostgreSQL when
--postgres-url is given), registers --entries DocumentEntries in submissions of
--per-submission entries from --clients concurrent clients, then measures
FindDocuments (one patient, up to 50 results) and GetDocuments latency.

    .venv/bin/python bench/registry_bench.py --entries 100000
    .venv/bin/python bench/registry_bench.py --entries 100000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Prints one JSON object per backend; the figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.hubproc import HubProcess, free_port, xdshub  # noqa: E402
from hub.client import HubClient  # noqa: E402
from registry.builders import DocumentSpec, document_entry, has_member, submission_set  # noqa: E402
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request  # noqa: E402
from registry.model import StoredQuery, SubmitObjectsRequest  # noqa: E402
from registry.vocabulary import (  # noqa: E402
    ACTION_REGISTER,
    ACTION_STORED_QUERY,
    NS_RS,
    ResponseStatus,
    StoredQueryId,
)

ORG_OID = "1.3.6.1.4.1.21367.2026.900"
REPOSITORY = "1.3.6.1.4.1.21367.2026.1.1"


def patient(n: int) -> str:
    return f"BENCH{n:07d}^^^&1.3.6.1.4.1.21367.2026.901&ISO"


def submission(patient_id: str, count: int) -> SubmitObjectsRequest:
    docs = []
    for _ in range(count):
        uid = f"2.25.{uuid.uuid4().int}"
        content = uid.encode()
        docs.append(document_entry(DocumentSpec(
            unique_id=uid, patient_id=patient_id, hash=hashlib.sha1(content).hexdigest(), size=len(content),
            repository_unique_id=REPOSITORY, creation_time=f"2026{random.randint(1, 12):02d}15093000")))
    ss = submission_set(f"2.25.{uuid.uuid4().int}", patient_id, ORG_OID, time.strftime("%Y%m%d%H%M%S"))
    return SubmitObjectsRequest([ss, *docs, *[has_member(ss.id, d.id) for d in docs]])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def register_all(client_bundle: Path, url: str, entries: int, per_submission: int, clients: int,
                 patients: int) -> tuple[float, list[str]]:
    submissions = entries // per_submission
    counter = iter(range(submissions))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        client = HubClient(client_bundle, base_url=url)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            answer = client.soap("/xds/registry", ACTION_REGISTER,
                                 render_submit_objects_request(submission(patient(n % patients), per_submission)))
            if answer.body.get("status") != ResponseStatus.SUCCESS.value:
                failures.append(answer.body.findtext(f".//{{{NS_RS}}}RegistryError") or "failure")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures


def query_latencies(client: HubClient, query_id: StoredQueryId, params_for: callable, n: int,  # type: ignore[valid-type]
                    return_type: str = "LeafClass") -> tuple[list[float], int]:
    times, results = [], 0
    for i in range(n):
        body = render_adhoc_query_request(StoredQuery(query_id.value, return_type, params_for(i)))
        started = time.perf_counter()
        answer = client.soap("/xds/registry", ACTION_STORED_QUERY, body)
        times.append((time.perf_counter() - started) * 1000)
        if answer.body.get("status") != ResponseStatus.SUCCESS.value:
            raise RuntimeError(f"query failed: {answer.body.findtext('.//{*}RegistryError')}")
        results = max(results, len(answer.body.findall(".//{*}ExtrinsicObject")))
    return times, results


def run(backend: str, database_url: str | None, args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="xdshub-bench-") as tmp:
        data = Path(tmp) / "hub"
        env = {"XDSHUB_DATABASE_URL": database_url} if database_url else {}
        import os

        full_env = {**os.environ, **env}
        xdshub("init", "--data-dir", str(data), env=full_env)
        bundle = Path(tmp) / "org"
        xdshub("org", "add", "Bench Org", "--oid", ORG_OID, "--data-dir", str(data), "--out", str(bundle),
               env=full_env)
        port = free_port()
        with HubProcess(data, port, env):
            url = f"https://127.0.0.1:{port}"
            seconds, failures = register_all(bundle, url, args.entries, args.per_submission, args.clients,
                                             args.patients)
            client = HubClient(bundle, base_url=url)
            rng = random.Random(7)
            approved = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"
            find, find_max = query_latencies(client, StoredQueryId.FIND_DOCUMENTS, lambda i: {
                "$XDSDocumentEntryPatientId": [[f"'{patient(rng.randrange(args.patients))}'"]],
                "$XDSDocumentEntryStatus": [[approved]]}, args.queries)
            engine = create_engine(database_url or f"sqlite:///{data / 'hub.db'}")
            with engine.connect() as conn:
                ids = [r[0] for r in conn.execute(text(
                    "SELECT id FROM registry_objects WHERE kind = 'DocumentEntry' LIMIT 2000"))]
            engine.dispose()
            get, _ = query_latencies(client, StoredQueryId.GET_DOCUMENTS, lambda i: {
                "$XDSDocumentEntryEntryUUID": [[f"('{rng.choice(ids)}')"]]}, args.queries)
        return {
            "backend": backend,
            "entries": args.entries,
            "per_submission": args.per_submission,
            "clients": args.clients,
            "register_seconds": round(seconds, 1),
            "register_entries_per_s": round(args.entries / seconds, 1),
            "register_failures": len(failures),
            "find_documents_ms_p50": round(statistics.median(find), 2),
            "find_documents_ms_p95": round(percentile(find, 95), 2),
            "find_documents_max_results": find_max,
            "get_documents_ms_p50": round(statistics.median(get), 2),
            "get_documents_ms_p95": round(percentile(get, 95), 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--per-submission", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--patients", type=int, default=0, help="default: entries / 25 (25 entries each)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    args = parser.parse_args()
    args.patients = args.patients or max(1, args.entries // 25)
    if args.only != "postgres":
        print(json.dumps(run("sqlite", None, args)), flush=True)
    if args.postgres_url and args.only != "sqlite":
        name = f"xdshub_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            print(json.dumps(run("postgresql", args.postgres_url.rsplit("/", 1)[0] + "/" + name, args)),
                  flush=True)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
