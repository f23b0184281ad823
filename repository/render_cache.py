"""Rendered frames kept on disk, shared by the hub's processes: rendering a frame is work, reading it back is not.

An entry is named by `cache_key`: the SHA-256 of the instance's stored bytes
(different bytes never share an entry), the frame number, the rendering
options and a format version. It is the file `directory/ab/<key>`, holding the
SHA-256 of the image then the image, written to a temporary file in the same
folder and moved into place with os.replace, so a reader sees a whole entry or
none. A missing entry (another process evicted it) is a miss; so is one whose
digest does not match (a torn write after a crash), which is removed.

Size: each RenderCache counts what it writes in memory. When the count passes
max_bytes, or every `sweep_every` puts (other processes write too), it scans
the folder and removes the least recently used entries (oldest mtime first;
`get` touches what it reads) down to LOW_WATER of max_bytes. A sweep runs in
one thread of a process at a time; sweeps of several processes may race, and
removing a file already gone is ignored. The cache never fails a request:
disk errors are logged and are a miss, or a write left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset

from repository.dicomweb.render import Rendered, RenderOptions, Window, render

__all__ = ["DEFAULT_MAX_BYTES", "RenderCache", "cache_key", "shared_cache"]

log = logging.getLogger(__name__)

FORMAT = "xdshub-rendered-1"     # change when rendering changes, so old entries are never served
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SWEEP_EVERY = 64
LOW_WATER = 0.9                  # a sweep leaves this fraction of max_bytes, so the next is not at once
STALE_TEMP_SECONDS = 3600        # a temporary file this old was left by a writer that died
TEMP_PREFIX = ".tmp-"
DIGEST_SIZE = 32
KEY = re.compile(r"[0-9a-f]{64}")


def cache_key(instance_sha256: str, frame: int, options: RenderOptions) -> str:
    """Hex SHA-256 of a canonical text of what the rendered image depends on."""
    window = options.window
    parts = (
        FORMAT,
        instance_sha256.lower(),
        str(frame),
        options.media_type,
        "-" if window is None else f"{window.center!r},{window.width!r},{window.function}",
        "-" if options.viewport is None else f"{options.viewport[0]}x{options.viewport[1]}",
        str(options.quality) if options.media_type == "image/jpeg" else "-",   # PNG is lossless
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _discard(path: str | Path) -> None:
    """Remove a file; one already gone (another process's sweep) or not removable is left be."""
    with contextlib.suppress(OSError):
        os.unlink(path)


class RenderCache:
    """Images by key in `directory`, at most about `max_bytes` of them; thread- and multi-process-safe."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, sweep_every: int = SWEEP_EVERY) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.sweep_every = sweep_every
        self._lock = threading.Lock()           # guards the counters
        self._sweeping = threading.Lock()       # one sweep at a time in this process
        self._size: int | None = None           # bytes in the folder as last counted; None: not yet scanned
        self._puts = 0

    def _path(self, key: str) -> Path:
        if not KEY.fullmatch(key):
            raise ValueError(f"a render cache key is 64 lower-case hex digits, not {key[:80]!r}")
        return self.directory / key[:2] / key

    def get(self, key: str) -> bytes | None:
        """The image stored under `key`, or None."""
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("render cache: cannot read %s: %s", path, exc)
            return None
        data = blob[DIGEST_SIZE:]
        if len(blob) < DIGEST_SIZE or hashlib.sha256(data).digest() != blob[:DIGEST_SIZE]:
            log.warning("render cache: %s is damaged, removed", path)
            _discard(path)
            return None
        with contextlib.suppress(OSError):     # evicted meanwhile: the bytes read are still good
            os.utime(path)
        return data

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (replacing what was there), then sweep when due."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as sink:
                    sink.write(hashlib.sha256(data).digest())
                    sink.write(data)
                os.replace(temp, path)
            except BaseException:
                _discard(temp)
                raise
        except OSError as exc:
            log.warning("render cache: cannot write %s: %s", path, exc)
            return
        with self._lock:
            self._puts += 1
            if self._size is not None:
                self._size += DIGEST_SIZE + len(data)
            due = self._size is None or self._size > self.max_bytes or self._puts % self.sweep_every == 0
        if due:
            self.sweep()

    def size(self) -> int:
        """Bytes in the folder as last counted (a sweep counts them)."""
        with self._lock:
            return self._size or 0

    def sweep(self) -> None:
        """Remove the least recently used entries while the folder holds more than max_bytes."""
        if not self._sweeping.acquire(blocking=False):
            return          # another thread is sweeping: its count will do
        try:
            entries, total = self._scan()
            if total > self.max_bytes:
                entries.sort()      # oldest first
                target = int(self.max_bytes * LOW_WATER)
                for _, size, path in entries:
                    if total <= target:
                        break
                    _discard(path)
                    total -= size
            with self._lock:
                self._size = total
        finally:
            self._sweeping.release()

    def _scan(self) -> tuple[list[tuple[float, int, str]], int]:
        """(mtime, size, path) of every entry, and their total size; stale temporary files are removed."""
        entries: list[tuple[float, int, str]] = []
        total = 0
        now = time.time()
        try:
            folders = [f.path for f in os.scandir(self.directory) if len(f.name) == 2 and f.is_dir()]
        except FileNotFoundError:
            return entries, total
        except OSError as exc:
            log.warning("render cache: cannot scan %s: %s", self.directory, exc)
            return entries, total
        for folder in folders:
            try:
                with os.scandir(folder) as items:
                    for item in items:
                        try:
                            stat = item.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        if item.name.startswith(TEMP_PREFIX):
                            if now - stat.st_mtime > STALE_TEMP_SECONDS:
                                _discard(item.path)
                            continue
                        entries.append((stat.st_mtime, stat.st_size, item.path))
                        total += stat.st_size
            except OSError as exc:          # removed by another process's sweep, or unreadable
                log.debug("render cache: cannot scan %s: %s", folder, exc)
        return entries, total


_shared: dict[Path, RenderCache] = {}
_shared_lock = threading.Lock()


def shared_cache(directory: Path) -> RenderCache:
    """The process's one RenderCache of `directory`, so that its threads share one count."""
    with _shared_lock:
        if directory not in _shared:
            _shared[directory] = RenderCache(directory)
        return _shared[directory]


def _window_key(key: str) -> str:
    return hashlib.sha256(f"{key}|window".encode()).hexdigest()


def cached_render(cache: RenderCache, instance_sha256: str, number: int, options: RenderOptions,
                  load: Callable[[], Dataset]) -> Rendered:
    """Frame `number` rendered with `options`, from the cache or rendered (the instance read by `load`) and
    cached, with the window it went through (kept beside the image)."""
    key = cache_key(instance_sha256, number, options)
    image = cache.get(key)
    if image is not None:
        window = cache.get(_window_key(key))
        if window is None:
            return Rendered(image, None)
        center, width, function = window.decode().split(",")
        return Rendered(image, Window(float(center), float(width), function))
    rendered = render(load(), number, options)
    cache.put(key, rendered.image)
    if rendered.window is not None:
        w = rendered.window
        cache.put(_window_key(key), f"{w.center!r},{w.width!r},{w.function}".encode())
    return rendered
