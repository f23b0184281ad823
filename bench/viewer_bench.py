"""Share-link viewer benchmark (issue 6): time to first image and rendered-frame throughput through a share link.

A real `xdshub serve` (defaults: SQLite, file blob store, 2 workers x 8
threads, TLS) in a temporary data dir gets one synthetic CT study of
--instances slices (--size x --size, 16-bit, Rescale Intercept -1024, a soft
tissue window; a gradient, a disc and noise, so JPEG encoding has real work),
stored through the real pipeline (STOW-RS by an organisation, in batches)
before anything is timed. Then, through share links made with POST
/api/shares, as a browser with no account and no client certificate would:

1. Time to first image, median of --repeat links, each a new visit (a new
   link, a new TLS session): GET /s/<token> (the page), then viewer.js,
   study.json and the frame the viewer shows first (the middle slice of the
   first series) at viewport 1024,1024, one after another as the page's
   script asks for them; the stylesheet and the series thumbnail are fetched
   alongside on a second connection, as a browser does, and not waited for.
   Cold: the render cache (data_dir/cache/rendered) emptied before the visit;
   warm: a second new link right after, the frame and thumbnail cached.
2. Rendered-frame throughput, frames/s: --frames distinct slices at viewport
   1024,1024 at concurrency 1 and 4, each from an empty render cache (every
   frame a real decode, window and JPEG encode), then the same frames again
   at concurrency 1 and 4 from the cache.

    .venv/bin/python bench/viewer_bench.py                       # the figures in bench/README.md
    .venv/bin/python bench/viewer_bench.py --instances 50 --size 256 --repeat 3 --frames 20   # a quick run

Certificates are verified against the hub's CA. Prints a table, then one
JSON object with every figure, with the 1-minute load average before and
after the run (the machine may be shared: a busy neighbour shows there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hubproc import HubProcess, free_port, text_table, xdshub  # noqa: E402
from hub.client import HubClient  # noqa: E402
from tests.factories.dicom import instance_bytes, make_instance  # noqa: E402

ORG_OID = "1.3.6.1.4.1.21367.2026.906"
ISSUER = "1.3.6.1.4.1.21367.2026.907"
VIEWPORT = "1024,1024"
BOUNDARY = "xdshub-viewer-bench"
STOW_BATCH = 25


def ct_slice(size: int, number: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Stored values 0..4095 (HU -1024..3071): a gradient, a disc whose radius follows the slice, and noise."""
    y, x = np.mgrid[0:size, 0:size]
    radius = size * (0.15 + 0.25 * np.sin(np.pi * (number + 0.5) / count))
    disc = (x - size / 2) ** 2 + (y - size / 2) ** 2 <= radius ** 2
    values = np.where(disc, 1064.0, 824.0 + 400.0 * x / size) + rng.normal(0, 15, (size, size))
    return np.clip(values, 0, 4095).astype(np.uint16)


def ct_instances(count: int, size: int, study_uid: str, series_uid: str) -> Iterator[bytes]:
    rng = np.random.default_rng(6)
    for number in range(count):
        ds = make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="VIEWER-BENCH", issuer=ISSUER,
                           rows=size, columns=size, instance_number=number + 1)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = ct_slice(size, number, count, rng).tobytes()
        yield instance_bytes(ds)


def stow(client: HubClient, url: str, instances: Iterator[bytes]) -> tuple[int, int]:
    """STOW-RS the instances in batches; (instances, bytes) stored."""
    token = client.token("dicomweb:write")
    stored = size = 0
    batch: list[bytes] = []

    def send() -> None:
        body = b"".join(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
                        for data in batch) + f"--{BOUNDARY}--\r\n".encode()
        response = client.http.post(f"{url}/dicomweb/studies", data=body, timeout=600, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
            "Accept": "application/dicom+json", "Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise RuntimeError(f"STOW answered {response.status_code}: {response.text[:300]}")

    for data in instances:
        batch.append(data)
        stored, size = stored + 1, size + len(data)
        if len(batch) == STOW_BATCH:
            send()
            batch = []
    if batch:
        send()
    return stored, size


def share(client: HubClient, study_uid: str) -> str:
    """A new share link of the study: its path, /s/<token>."""
    response = client.api("POST", "/api/shares", {"study_uid": study_uid}, scope="share:create")
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/shares answered {response.status_code}: {response.text[:300]}")
    return urlsplit(response.json()["url"]).path


def empty_render_cache(data_dir: Path) -> None:
    folder = data_dir / "cache" / "rendered"
    if folder.exists():
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()


def browser_session(ca: Path, cookies: requests.cookies.RequestsCookieJar | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    if cookies is not None:
        session.cookies.update(cookies)
    return session


def get(session: requests.Session, url: str) -> bytes:
    response = session.get(url, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return response.content


@dataclass(frozen=True)
class Visit:
    page_ms: float
    script_ms: float
    study_json_ms: float
    frame_ms: float
    total_ms: float
    study_json_bytes: int
    frame_bytes: int


def first_frame(study: dict[str, Any]) -> tuple[str, str]:
    """The viewer's first image: the middle slice of the first series (viewer.js selectSeries); its
    instance and series UIDs."""
    series = study["series"][0]
    return series["instances"][len(series["instances"]) // 2]["uid"], series["uid"]


def visit(root: str, path: str, ca: Path) -> Visit:
    """One new visit of a link, timed from the page's request to the first frame's last byte."""
    session = browser_session(ca)
    marks = [time.perf_counter()]
    get(session, root + path)
    marks.append(time.perf_counter())
    aside = browser_session(ca, session.cookies)       # a browser's second connection: stylesheet, thumbnail
    thread = threading.Thread(target=lambda: get(aside, f"{root}/viewer/static/viewer.css"))
    thread.start()
    get(session, f"{root}/viewer/static/viewer.js")
    marks.append(time.perf_counter())
    study_json = get(session, f"{root}{path}/study.json")
    marks.append(time.perf_counter())
    instance, series = first_frame(json.loads(study_json))
    thumbnail = threading.Thread(target=lambda: get(aside, f"{root}{path}/series/{series}/thumbnail.jpg"))
    thread.join()
    thumbnail.start()
    frame = get(session, f"{root}{path}/instances/{instance}/frames/1.jpg?viewport={VIEWPORT}")
    marks.append(time.perf_counter())
    thumbnail.join()
    session.close()
    aside.close()
    steps = [round((b - a) * 1000, 1) for a, b in zip(marks, marks[1:], strict=False)]
    return Visit(*steps, round((marks[-1] - marks[0]) * 1000, 1), len(study_json), len(frame))


def frames_per_second(concurrency: int, work: Callable[[str], bytes], urls: list[str]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, urls))
    return round(len(urls) / (time.perf_counter() - started), 2)


def throughput(root: str, path: str, ca: Path, data_dir: Path, frames: int) -> dict[str, float]:
    """Frames/s over `frames` distinct slices: rendered from an empty cache, then from the cache."""
    opener = browser_session(ca)
    get(opener, root + path)
    study = json.loads(get(opener, f"{root}{path}/study.json"))
    instances = [i["uid"] for s in study["series"] for i in s["instances"]][:frames]
    urls = [f"{root}{path}/instances/{uid}/frames/1.jpg?viewport={VIEWPORT}" for uid in instances]
    local = threading.local()

    def fetch(url: str) -> bytes:
        if not hasattr(local, "session"):
            local.session = browser_session(ca, opener.cookies)
        return get(local.session, url)

    figures = {}
    for concurrency in (1, 4):
        empty_render_cache(data_dir)
        figures[f"rendered_frames_per_s_c{concurrency}"] = frames_per_second(concurrency, fetch, urls)
    for concurrency in (1, 4):
        figures[f"cached_frames_per_s_c{concurrency}"] = frames_per_second(concurrency, fetch, urls)
    return figures


def summary(visits: list[Visit]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name in ("page_ms", "script_ms", "study_json_ms", "frame_ms"):
        figures[f"{name}_median"] = round(statistics.median(getattr(v, name) for v in visits), 1)
    totals = [v.total_ms for v in visits]
    figures.update(total_ms_median=round(statistics.median(totals), 1), total_ms_min=min(totals),
                   total_ms_max=max(totals))
    return figures


def table(result: dict[str, Any]) -> str:
    cold, warm, rate = result["first_image_cold"], result["first_image_warm"], result["throughput"]
    rows = [("time to first image, median ms (min-max)", f"{cold['total_ms_median']} "
             f"({cold['total_ms_min']}-{cold['total_ms_max']})", f"{warm['total_ms_median']} "
             f"({warm['total_ms_min']}-{warm['total_ms_max']})")]
    for step in ("page", "script", "study_json", "frame"):
        rows.append((f"  of which {step}, median ms", str(cold[f"{step}_ms_median"]), str(warm[f"{step}_ms_median"])))
    rows += [("frames/s, concurrency 1", str(rate["rendered_frames_per_s_c1"]), str(rate["cached_frames_per_s_c1"])),
             ("frames/s, concurrency 4", str(rate["rendered_frames_per_s_c4"]), str(rate["cached_frames_per_s_c4"]))]
    return text_table(("cold (rendered)", "warm (cached)"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=500, help="CT slices in the study")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each slice")
    parser.add_argument("--repeat", type=int, default=5, help="links (visits) timed, cold and warm each")
    parser.add_argument("--frames", type=int, default=100, help="distinct frames of each throughput run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xdshub-viewer-bench-"))
    load_before = os.getloadavg()[0]
    try:
        data_dir = work / "hub"
        xdshub("init", "--data-dir", str(data_dir))
        toml = data_dir / "hub.toml"
        toml.write_text(toml.read_text().replace("dimse_port = 11112", "dimse_port = 0"))
        xdshub("org", "add", "Viewer Bench Org", "--oid", ORG_OID, "--data-dir", str(data_dir), "--out",
               str(work / "org"), "--scopes", "dicomweb:write share:create")
        ca = data_dir / "pki" / "ca.crt"
        with HubProcess(data_dir, free_port()) as hub, HubClient(work / "org", base_url=hub.url) as client:
            study_uid, series_uid = generate_uid(), generate_uid()
            started = time.perf_counter()
            stored, size = stow(client, hub.url, ct_instances(args.instances, args.size, study_uid, series_uid))
            ingest_seconds = time.perf_counter() - started
            cold, warm = [], []
            for _ in range(args.repeat):
                empty_render_cache(data_dir)
                cold.append(visit(hub.url, share(client, study_uid), ca))
                warm.append(visit(hub.url, share(client, study_uid), ca))
            rates = throughput(hub.url, share(client, study_uid), ca, data_dir, min(args.frames, args.instances))
        result = {
            "instances": stored, "size": args.size, "instance_bytes": size // stored, "repeat": args.repeat,
            "frames": min(args.frames, args.instances), "viewport": VIEWPORT,
            "ingest_seconds": round(ingest_seconds, 1), "ingest_instances_per_s": round(stored / ingest_seconds, 1),
            "study_json_bytes": cold[0].study_json_bytes, "frame_bytes": cold[0].frame_bytes,
            "first_image_cold": summary(cold), "first_image_warm": summary(warm), "throughput": rates,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],   # the machine is shared
            "visits_cold": [asdict(v) for v in cold], "visits_warm": [asdict(v) for v in warm],
        }
        print(table(result))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
