"""Start a real `xdshub serve` on loopback for benchmarks and functional checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from hub.client import wait_until_healthy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def xdshub(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [str(Path(sys.executable).with_name("xdshub")), *args]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def process_tree(root: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])      # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


class HubProcess:
    """`xdshub serve` in a subprocess; waits for /healthz, stops on exit."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = {**os.environ, **(env or {})}
        self.url = f"https://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HubProcess:
        cmd = [str(Path(sys.executable).with_name("xdshub")), "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port)]
        self.log = (self.data_dir / "serve.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        ca = self.data_dir / "pki" / "ca.crt"
        if wait_until_healthy(self.url, ca, 60, alive=lambda: self.proc is not None and self.proc.poll() is None):
            return self
        raise RuntimeError(f"xdshub serve did not become healthy; see {self.data_dir / 'serve.log'}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def text_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned text: the first column left-aligned, the others right-aligned under `headers`."""
    width = max(len(row[0]) for row in rows)
    sizes = [max(len(h), *(len(r[i + 1]) for r in rows)) for i, h in enumerate(headers)]
    lines = [f"{'':{width}}  " + "  ".join(f"{h:>{n}}" for h, n in zip(headers, sizes, strict=True))]
    lines += [f"{row[0]:{width}}  " + "  ".join(f"{v:>{n}}" for v, n in zip(row[1:], sizes, strict=True))
              for row in rows]
    return "\n".join(lines)
