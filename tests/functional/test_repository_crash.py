"""A server killed (SIGKILL, master and workers) in the middle of ITI-41 leaves no half-registered submission.

Each round starts `xdshub serve`, begins providing a 192 MiB document and
kills the whole process group after a different delay: while the body is
still uploading, while it is spooled or stored, or around the commit. After
every round, with the server restarted, the invariant is checked directly on
the database and the blob folder:

- every DocumentEntry the registry holds for this repository has its
  repository row, and that row's blob exists with the registered size and
  SHA-1 (no registry entry points at a missing document);
- every blob under a real name holds exactly the bytes its name (SHA-256)
  says (a crash never leaves a half-written blob under a real name);
- a submission is there entirely or not at all.

Finally `xdshub storage gc` reclaims what the killed submissions stored but
never committed.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.client import HubClient
from hub.db import Database
from registry.tables import RegistryObjectRow
from registry.vocabulary import ObjectKind
from repository.consumer import Outgoing, provide
from repository.tables import StoredDocument
from tests.factories.metadata import document, submission
from tests.factories.streams import PatternStream, pattern_sha1
from tests.functional.conftest import RunningHub, kill_hard, new_hub, serving, xdshub_command

pytestmark = pytest.mark.functional

# On this machine kind the upload ends near 0.8 s and the commit follows within 0.3 s.
DELAYS = (0.05, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 20.0)   # the last lets the submission finish
SIZE = 192 * 1024 * 1024


def blob_files(data_dir: Path) -> dict[str, Path]:
    root = data_dir / "blobs"
    return {p.name: p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"}


def file_sha(path: Path, name: str = "sha256") -> str:
    digest = hashlib.new(name)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_invariant(hub: RunningHub, uids: list[str]) -> set[str]:
    """Assert the invariant; answer the uniqueIds of the submissions that made it."""
    blobs = blob_files(hub.data_dir)
    for name, path in blobs.items():
        assert file_sha(path) == name, f"blob {name} does not hold the bytes its name says"
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            entries = {r.unique_id: r for r in session.scalars(select(RegistryObjectRow).where(
                RegistryObjectRow.kind == ObjectKind.DOCUMENT_ENTRY.value))}
            rows = {r.unique_id: r for r in session.scalars(select(StoredDocument))}
    finally:
        database.dispose()
    for unique_id, entry in entries.items():
        row = rows.get(unique_id)
        assert row is not None, f"registry entry {unique_id} has no document in the repository"
        assert row.sha256 in blobs, f"registry entry {unique_id} points at a missing blob"
        assert (entry.hash, entry.size) == (row.sha1, row.size)
        assert file_sha(blobs[row.sha256], "sha1") == row.sha1
    assert set(rows) <= set(entries), "a repository row without its registry entry (in-process registry)"
    return {uid for uid in uids if uid in entries}


# A connection the killed server cuts mid-request is dropped by urllib3 without close(); its socket
# is reclaimed by the garbage collector, which reports it. That is the client's side of the crash.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_kill_at_any_moment_leaves_all_or_nothing(tmp_path: Path) -> None:
    hub = new_hub(tmp_path / "var")
    assert hub.log is not None
    uids: list[str] = []
    outcomes: list[object] = []
    for round_number, delay in enumerate(DELAYS):
        entry = document(hash=pattern_sha1(SIZE, round_number), size=SIZE, mime_type="application/octet-stream")
        uids.append(entry.unique_id or "")
        with serving(hub.data_dir, hub.settings, hub.log) as process:
            client = HubClient(hub.bundle("Org A"), base_url=hub.url, timeout=60)
            client.token("xds:register")  # fetched before the clock starts
            outcome: list[object] = []

            def send(entry=entry, seed=round_number, client=client, outcome=outcome) -> None:  # noqa: ANN001
                content = Outgoing("application/octet-stream", SIZE, lambda: PatternStream(SIZE, seed))
                try:
                    outcome.append(provide(client, submission(entries=[entry]), {entry.id: content}).status)
                except Exception as exc:  # the connection dies with the server
                    outcome.append(type(exc).__name__)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            time.sleep(delay)
            kill_hard(process)
            sender.join(timeout=60)
            client.close()
        with serving(hub.data_dir, hub.settings, hub.log):
            made_it = check_invariant(hub, uids)
        if outcome == [200]:
            assert entry.unique_id in made_it, f"round {round_number}: acknowledged, then lost"
        outcomes.append(outcome[0] if outcome else "no answer")
    # The rounds cover both ends: a submission cut off, and one acknowledged and kept.
    assert outcomes[0] != 200 and outcomes[-1] == 200, outcomes

    # What killed submissions stored without committing is garbage; gc takes it (grace 0 here).
    before = set(blob_files(hub.data_dir))
    result = subprocess.run([*xdshub_command(), "storage", "gc", "--grace", "0", "--data-dir", str(hub.data_dir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    after = set(blob_files(hub.data_dir))
    referenced = len(check_invariant(hub, uids))
    assert len(after) == referenced and after <= before
    assert not any((hub.data_dir / "blobs" / "tmp").glob("*"))
