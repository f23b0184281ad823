"""DICOMweb benchmark: the hub against Orthanc with its DICOMweb plugin, in one run, on the same studies.

All run on loopback. The hub serves HTTPS and requires a client
certificate and a bearer token on every request. Orthanc is measured twice,
each time on a fresh store:

- `orthanc`: plain HTTP, no authentication, as it ships.
- `orthanc_tls`: behind nginx with mutual TLS (the hub's server certificate,
  the client's certificate checked against the hub's CA), the reverse proxy
  the Orthanc Book recommends for HTTPS. Orthanc's own HTTPS cannot serve:
  Debian's Orthanc 1.10.1 crashes (segmentation fault) on the first TLS
  connection here. This is the like-for-like transport; the hub still pays
  its bearer token checks and audit records on top. Skipped, with a note,
  when nginx is not installed (apt-get install nginx-light).

Each gets the same synthetic CT studies (--studies x --instances, 16-bit
--size x --size pixels, made with pydicom), then, at concurrency 1 and 4:

1. STOW-RS: one POST /studies per study (multipart/related, all its
   instances); instances/s. Concurrency 1 stores the first half of the
   studies, concurrency 4 the second half.
2. QIDO-RS: study searches by PatientID, by StudyDate range, by PatientName
   wildcard and by ModalitiesInStudy (--queries in all); p50 and p95 in ms.
   At concurrency 1 also the CPU each search cost the server's processes
   (all of them: the hub's workers; Orthanc and nginx) and the client, in
   ms, read from /proc and getrusage around the loop.
3. WADO-RS: every study retrieved whole (multipart/related,
   application/dicom, transfer-syntax=*), the stream read to the end; MB/s.

    apt-get install orthanc orthanc-dicomweb nginx-light   # Debian packages; the services need not run
    .venv/bin/python bench/dicomweb_bench.py       # the figures in bench/README.md
    .venv/bin/python bench/dicomweb_bench.py --studies 8 --instances 20 --queries 100   # a quick run

Prints one JSON object with every server's figures and the hub's ratios to
each Orthanc (for latency, Orthanc/hub, so above 1 means the hub is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hubproc import HubProcess, cpu_seconds, free_port, process_tree, xdshub  # noqa: E402
from hub.client import HubClient  # noqa: E402
from tests.factories.dicom import instance_bytes, make_instance  # noqa: E402

ORG_OID = "1.3.6.1.4.1.21367.2026.900"
ISSUER = "1.3.6.1.4.1.21367.2026.901"
ORTHANC = Path("/usr/sbin/Orthanc")
ORTHANC_DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
NGINX = Path("/usr/sbin/nginx")
BOUNDARY = "xdshub-bench-boundary"


@dataclass(frozen=True)
class Study:
    uid: str
    patient_id: str
    date: str
    instances: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(i) for i in self.instances)


@dataclass
class Server:
    name: str
    root: str                         # the DICOMweb root URL
    session: requests.Session
    pids: list[int]                   # the processes that serve it (read for their CPU time)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_studies(count: int, per_study: int, size: int) -> list[Study]:
    studies = []
    for n in range(count):
        study_uid, series_uid = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"
        patient, date = f"BENCH{n:05d}", f"2026{(n % 12) + 1:02d}{(n % 28) + 1:02d}"
        instances = []
        for k in range(per_study):
            ds = make_instance(study_uid=study_uid, series_uid=series_uid, patient_id=patient, issuer=ISSUER,
                               rows=size, columns=size, instance_number=k + 1)
            ds.StudyDate, ds.PatientName = date, f"BENCH^PATIENT{n:05d}"
            instances.append(instance_bytes(ds))
        studies.append(Study(study_uid, patient, date, instances))
    return studies


def multipart(instances: list[bytes]) -> Iterator[bytes]:
    for data in instances:
        yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield data
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def stow(server: Server, study: Study) -> None:
    body = b"".join(multipart(study.instances))
    response = server.session.post(
        f"{server.root}/studies", data=body, timeout=300,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
                 "Accept": "application/dicom+json"})
    if response.status_code != 200:
        raise RuntimeError(f"{server.name} STOW answered {response.status_code}: {response.text[:300]}")


def wado(server: Server, study: Study) -> int:
    response = server.session.get(
        f"{server.root}/studies/{study.uid}", stream=True, timeout=300,
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    if response.status_code != 200:
        raise RuntimeError(f"{server.name} WADO answered {response.status_code}: {response.text[:300]}")
    received = sum(len(chunk) for chunk in response.iter_content(1 << 20))
    if received < study.size:
        raise RuntimeError(f"{server.name} WADO sent {received} bytes for a study of {study.size}")
    return received


def queries(studies: list[Study], count: int) -> list[dict[str, str]]:
    kinds: list[Callable[[int], dict[str, str]]] = [
        lambda n: {"PatientID": studies[n % len(studies)].patient_id},
        lambda n: {"StudyDate": f"2026{(n % 12) + 1:02d}01-2026{(n % 12) + 1:02d}15"},
        lambda n: {"PatientName": f"BENCH^PATIENT{n % len(studies):04d}*"},
        lambda n: {"ModalitiesInStudy": "CT", "limit": "25"},
    ]
    return [kinds[n % len(kinds)](n) for n in range(count)]


def qido(server: Server, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = server.session.get(f"{server.root}/studies", params=params, timeout=60,
                                  headers={"Accept": "application/dicom+json"})
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 204):
        raise RuntimeError(f"{server.name} QIDO answered {response.status_code}: {response.text[:300]}")
    return elapsed * 1000


def run_pool(concurrency: int, work: Callable[[object], object], items: list) -> tuple[float, list]:  # type: ignore[type-arg]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(work, items))
    return time.perf_counter() - started, results


def measure(server: Server, studies: list[Study], query_count: int) -> dict[str, object]:
    figures: dict[str, object] = {}
    halves = {1: studies[: len(studies) // 2], 4: studies[len(studies) // 2:]}
    for concurrency, part in halves.items():
        seconds, _ = run_pool(concurrency, lambda s: stow(server, s), part)  # type: ignore[arg-type]
        figures[f"stow_instances_per_s_c{concurrency}"] = round(sum(len(s.instances) for s in part) / seconds, 1)
    asked = queries(studies, query_count)
    for concurrency in (1, 4):
        server_cpu, client_cpu = cpu_seconds(server.pids), own_cpu_seconds()
        _, latencies = run_pool(concurrency, lambda q: qido(server, q), asked)  # type: ignore[arg-type]
        if concurrency == 1:
            figures["qido_server_cpu_ms_c1"] = round((cpu_seconds(server.pids) - server_cpu) * 1000 / len(asked), 2)
            figures["qido_client_cpu_ms_c1"] = round((own_cpu_seconds() - client_cpu) * 1000 / len(asked), 2)
        ordered = sorted(latencies)
        figures[f"qido_p50_ms_c{concurrency}"] = round(statistics.median(ordered), 2)
        figures[f"qido_p95_ms_c{concurrency}"] = round(ordered[int(0.95 * (len(ordered) - 1))], 2)
    for concurrency in (1, 4):
        seconds, sizes = run_pool(concurrency, lambda s: wado(server, s), studies)  # type: ignore[arg-type]
        figures[f"wado_mb_per_s_c{concurrency}"] = round(sum(sizes) / seconds / 1e6, 1)
    return figures


def start_orthanc(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "Name": "bench", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False, "SslEnabled": False,
        "Plugins": [str(ORTHANC_DICOMWEB)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpThreadsCount": 50, "StorageCompression": False,
    }
    config_file = folder / "orthanc.json"
    config_file.write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen([str(ORTHANC), str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if requests.get(f"{url}/system", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"Orthanc did not start; see {folder / 'orthanc.log'}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


NGINX_CONFIG = """
daemon off;
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  upstream orthanc {{ server 127.0.0.1:{orthanc_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    ssl_client_certificate {ca};
    ssl_verify_client on;
    keepalive_requests 100000;
    client_max_body_size 0;
    location / {{
      proxy_pass http://orthanc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffers 64 64k;
      proxy_buffer_size 64k;
      proxy_busy_buffers_size 512k;
      proxy_max_temp_file_size 0;
    }}
  }}
}}
"""


def start_tls_front(folder: Path, orthanc_url: str, pki: Path, client: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx on loopback with mutual TLS in front of Orthanc: the hub's server certificate and CA."""
    folder.mkdir()
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(folder=folder, orthanc_port=orthanc_url.rsplit(":", 1)[1], port=port,
                                          certificate=pki / "server.crt", key=pki / "server.key", ca=pki / "ca.crt"))
    log = (folder / "nginx.log").open("wb")
    process = subprocess.Popen([str(NGINX), "-p", str(folder), "-c", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    probe = tls_session(pki / "ca.crt", client)
    said = ""
    for _ in range(60):
        try:
            answer = probe.get(f"{url}/system", timeout=2)
            if answer.status_code == 200:
                return process, url
            said = f"{answer.status_code} {answer.text[:200]}"
        except requests.RequestException as exc:
            said = str(exc)
        if process.poll() is not None:
            break
        time.sleep(0.25)
    stop(process)
    log.close()
    logged = " ".join((folder / name).read_text(errors="replace") for name in ("nginx.log", "error.log")
                      if (folder / name).exists())
    raise RuntimeError(f"nginx in front of Orthanc did not answer ({said}); it logged: {logged[-2000:]}")


def tls_session(ca: Path, client: Path) -> requests.Session:
    """A client presenting the organisation's certificate (the bundle `org add` wrote), trusting the hub's CA."""
    session = requests.Session()
    session.trust_env = False       # else REQUESTS_CA_BUNDLE, where set, overrides `verify`
    session.cert = (str(client / "client.crt"), str(client / "client.key"))
    session.verify = str(ca)
    return session


def measure_orthanc(folder: Path, studies: list[Study], query_count: int, pki: Path | None,
                    client: Path) -> dict[str, object]:
    """A fresh Orthanc measured plain, or behind nginx with mutual TLS when `pki` is given."""
    folder.mkdir()
    orthanc, url = start_orthanc(folder)
    front: subprocess.Popen[bytes] | None = None
    try:
        if pki is None:
            return measure(Server("orthanc", f"{url}/dicom-web", requests.Session(), [orthanc.pid]), studies,
                           query_count)
        front, front_url = start_tls_front(folder / "nginx", url, pki, client)
        return measure(Server("orthanc_tls", f"{front_url}/dicom-web", tls_session(pki / "ca.crt", client),
                              [orthanc.pid, *process_tree(front.pid)]), studies, query_count)
    finally:
        if front is not None:
            stop(front)
        stop(orthanc)


def ratios(hub: dict[str, object], other: dict[str, object]) -> dict[str, float]:
    answer = {}
    for key, value in hub.items():
        theirs = other[key]
        assert isinstance(value, float) and isinstance(theirs, float)
        answer[key] = round(theirs / value if "_ms_" in key else value / theirs, 2)
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--instances", type=int, default=50, help="instances per study")
    parser.add_argument("--size", type=int, default=256, help="rows and columns of each CT image")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--database-url", default="",
                        help="the hub's database (default SQLite in its data dir), e.g. postgresql+psycopg://...")
    parser.add_argument("--plain-only", action="store_true",
                        help="measure Orthanc only as it ships (plain HTTP), not behind nginx with mutual TLS")
    args = parser.parse_args()
    if not (ORTHANC.exists() and ORTHANC_DICOMWEB.exists()):
        sys.exit("Orthanc and its DICOMweb plugin are needed: apt-get install orthanc orthanc-dicomweb")
    front = NGINX.exists() and not args.plain_only
    if not front and not args.plain_only:
        print("nginx is not installed: Orthanc behind mutual TLS is not measured (apt-get install nginx-light)",
              file=sys.stderr)
    studies = make_studies(args.studies, args.instances, args.size)
    work = Path(tempfile.mkdtemp(prefix="xdshub-dicomweb-bench-"))
    try:
        data_dir = work / "hub"
        xdshub("init", "--data-dir", str(data_dir))
        toml = data_dir / "hub.toml"
        toml.write_text(toml.read_text().replace("publish_quiet_seconds = 300", "publish_quiet_seconds = 0")
                        .replace("dimse_port = 11112", "dimse_port = 0"))
        env = {"XDSHUB_DATABASE_URL": args.database_url} if args.database_url else {}
        if args.database_url:
            xdshub("init", "--data-dir", str(data_dir), env={**os.environ, **env})   # the schema in that database
        xdshub("org", "add", "Bench Org", "--oid", ORG_OID, "--data-dir", str(data_dir), "--out",
               str(work / "org"), "--scopes", "dicomweb:read dicomweb:write", env={**os.environ, **env})
        results: dict[str, dict[str, object]] = {}
        results["orthanc"] = measure_orthanc(work / "orthanc", studies, args.queries, None, work / "org")
        if front:
            results["orthanc_tls"] = measure_orthanc(work / "orthanc-tls", studies, args.queries,
                                                     data_dir / "pki", work / "org")
        with HubProcess(data_dir, free_port(), env) as hub:
            client = HubClient(work / "org", base_url=hub.url)
            hub_session = client.http
            hub_session.headers["Authorization"] = f"Bearer {client.token('dicomweb:read dicomweb:write')}"
            assert hub.proc is not None
            results["xdshub"] = measure(Server("xdshub", f"{hub.url}/dicomweb", hub_session,
                                               process_tree(hub.proc.pid)), studies, args.queries)
        print(json.dumps({
            "studies": args.studies, "instances_per_study": args.instances,
            "instance_bytes": len(studies[0].instances[0]),
            "total_mb": round(sum(s.size for s in studies) / 1e6, 1), "queries": args.queries,
            **results,
            "hub_vs_orthanc": ratios(results["xdshub"], results["orthanc"]),
            **({"hub_vs_orthanc_tls": ratios(results["xdshub"], results["orthanc_tls"])} if front else {}),
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
