"""Audit benchmark: `xdshub audit verify` speed on a chain of --records records.

Builds the chain directly in a fresh data dir (`xdshub init`, SQLite or
--postgres-url), the way `hub.audit.chain.append` writes it (same hashes, a
signed checkpoint every 100 records, realistic ~2 KiB ITI-18 audit messages)
but in bulk, then times the command-line verification.

    .venv/bin/python bench/audit_bench.py --records 1000000

Prints one JSON object; the figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from bench.hubproc import xdshub  # noqa: E402
from hub.audit import events  # noqa: E402
from hub.audit.chain import CHECKPOINT_EVERY, content_hash, sign_checkpoint  # noqa: E402
from hub.audit.events import Party  # noqa: E402
from hub.audit.message import Outcome  # noqa: E402
from hub.audit.record import entry_of  # noqa: E402
from hub.audit.tables import GENESIS_HASH, AuditCheckpoint, AuditHead, AuditRecord  # noqa: E402
from hub.db import Database  # noqa: E402
from hub.settings import load_settings  # noqa: E402

BATCH = 5000


def sample_entries(count: int) -> list:  # type: ignore[type-arg]
    """A few distinct realistic events, reused round-robin (their content differs by seq in the hash)."""
    hub = Party("https://127.0.0.1:8443/xds/registry", "127.0.0.1")
    entries = []
    for n in range(count):
        requestor = Party(f"1.3.6.1.4.1.21367.2026.{100 + n}", "10.0.0.7", f"Org {n}", f"client-{n}")
        query = (b"<query:AdhocQueryRequest xmlns:query='urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0'>"
                 + b"<x/>" * 200 + b"</query:AdhocQueryRequest>")
        event = events.stored_query(requestor=requestor, hub=hub, outcome=Outcome.SUCCESS,
                                    time=datetime(2026, 11, 29, tzinfo=UTC), source_id="https://127.0.0.1:8443",
                                    query_id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", query_xml=query,
                                    patient_id=f"P{n}^^^&1.2.3&ISO", home_community_id=None)
        entries.append(entry_of(event))
    return entries


def build_chain(database: Database, records: int, key: Path) -> float:
    started = time.perf_counter()
    entries = sample_entries(16)
    prev, base = GENESIS_HASH, datetime(2026, 11, 29, tzinfo=UTC)
    with database.session() as session:
        for start in range(1, records + 1, BATCH):
            rows, checkpoints = [], []
            for seq in range(start, min(start + BATCH, records + 1)):
                entry, recorded_at = entries[seq % len(entries)], base + timedelta(milliseconds=seq)
                chain_hash = content_hash(prev, seq, recorded_at, entry)
                rows.append({**{f: getattr(entry, f) for f in entry.__dataclass_fields__}, "seq": seq,
                             "recorded_at": recorded_at, "prev_hash": prev, "hash": chain_hash})
                if seq % CHECKPOINT_EVERY == 0:
                    checkpoints.append({"seq": seq, "hash": chain_hash, "signed_at": recorded_at,
                                        "signature": sign_checkpoint(key, seq, chain_hash)})
                prev = chain_hash
            session.execute(insert(AuditRecord), rows)
            if checkpoints:
                session.execute(insert(AuditCheckpoint), checkpoints)
        session.add(AuditHead(id=1, seq=records, hash=prev))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default="", help="a database URL to use instead of SQLite (emptied first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xdshub-audit-bench-") as tmp:
        data_dir = Path(tmp) / "var"
        env = {**os.environ, **({"XDSHUB_DATABASE_URL": args.postgres_url} if args.postgres_url else {})}
        xdshub("init", "--data-dir", str(data_dir), env=env)
        settings = load_settings(data_dir, environ=env)
        database = Database(settings.database_url)
        with database.session() as session:
            for table in (AuditCheckpoint, AuditRecord, AuditHead):
                session.query(table).delete()
        built = build_chain(database, args.records, settings.path(settings.signing_key))
        database.dispose()
        started = time.perf_counter()
        result = subprocess.run([str(Path(sys.executable).with_name("xdshub")), "audit", "verify", "--data-dir",
                                 str(data_dir)], env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    print(json.dumps({"records": args.records, "build_seconds": round(built, 1),
                      "verify_seconds": round(elapsed, 1), "verify_records_per_s": round(args.records / elapsed),
                      "exit_code": result.returncode, "output": (result.stdout or result.stderr).strip()}, indent=2))


if __name__ == "__main__":
    main()
