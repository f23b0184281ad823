"""`xdshub serve`: the Flask app behind gunicorn, over HTTPS with optional client certificates.

TLS (RFC 8446 / 5246, minimum TLS 1.2) uses the server certificate and key
from the settings. Client certificates are requested (CERT_OPTIONAL) and
verified against the ``ca_certs`` bundle: a browser without one still
connects (share links, health checks), a certificate from a foreign CA fails
the handshake, and the machine-to-machine endpoints refuse requests without
one (`hub.security.protect`).

Gunicorn does not hand the peer certificate to the application, so the worker
class records it per request (thread-local) and a small WSGI middleware puts
it into ``environ[PEER_CERT_ENVIRON]`` after dropping anything a client sent.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from hub.security.tls import PEER_CERT_ENVIRON, server_context
from hub.settings import Settings

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger(__name__)
_peer = threading.local()


class PeerCertificateMiddleware:
    """Copies the certificate the handshake verified into the environ, never a client's value."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(PEER_CERT_ENVIRON, None)
        der = getattr(_peer, "der", None)
        if der:
            environ[PEER_CERT_ENVIRON] = der
        return self.app(environ, start_response)


class PeerCertificateWorker(ThreadWorker):  # type: ignore[misc]
    """gthread worker that remembers each connection's verified client certificate."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        application: WSGIApp = self.wsgi  # type: ignore[has-type]  # set by gunicorn
        self.wsgi = PeerCertificateMiddleware(application)

    def handle_request(self, req: Any, conn: Any) -> Any:
        der: bytes | None = None
        getpeercert = getattr(conn.sock, "getpeercert", None)
        if getpeercert is not None:
            try:
                der = getpeercert(binary_form=True)
            except (ValueError, ssl.SSLError):
                der = None
        _peer.der = der
        try:
            return super().handle_request(req, conn)
        finally:
            _peer.der = None


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Server context: our chain, optional client certificates verified against ca_certs."""
    context = server_context(settings, ssl.CERT_OPTIONAL)
    context.set_alpn_protocols(["http/1.1"])
    return context


class HubApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context: ssl.SSLContext | None = None
        super().__init__()

    def _ssl_context(self, _config: Any, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        # One context per worker process, not one per connection.
        if self._context is None:
            self._context = make_ssl_context(self.settings)
        return self._context

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [_bind(s.host, s.port)],
            "workers": s.workers,
            "threads": s.threads,
            "worker_class": f"{PeerCertificateWorker.__module__}.{PeerCertificateWorker.__qualname__}",
            "certfile": str(s.path(s.server_cert)),
            "keyfile": str(s.path(s.server_key)),
            "ca_certs": str(s.path(s.ca_certs)),
            "cert_reqs": ssl.CERT_OPTIONAL,
            "ssl_context": self._ssl_context,
            "child_exit": _child_exit,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level.lower(),
            "proc_name": "xdshub",
            "timeout": 120,
            "graceful_timeout": 30,
            "forwarded_allow_ips": "",
            "control_socket_disable": True,
        }
        for key, value in options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        from hub import create_app

        return create_app(self.settings)  # type: ignore[return-value]


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _child_exit(_server: Any, worker: Any) -> None:
    """Forget the metrics files of a worker that exited (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir(settings: Settings) -> Path:
    """A fresh, empty DIR/run/prometheus for this server's worker metrics."""
    folder = settings.data_dir / "run" / "prometheus"
    if "prometheus_client.values" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("prometheus_client was imported before serve(): /metrics shows one worker only")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def check_files(settings: Settings) -> None:
    for name in ("server_cert", "server_key", "ca_certs", "signing_key"):
        path = settings.path(getattr(settings, name))
        if not path.exists():
            raise FileNotFoundError(f"{name} {path} does not exist; run `xdshub init` first")


def serving_settings(settings: Settings, host: str | None = None, port: int | None = None) -> Settings:
    """Settings with the bind address applied; a wildcard bind keeps the configured host in
    the public URL, so token issuer and audience stay what the client bundles name."""
    from dataclasses import replace

    bind_host = host or settings.host
    bind_port = port if port is not None else settings.port
    public_url = settings.public_url
    if not public_url:
        url_host = settings.host if bind_host in ("0.0.0.0", "::", "") else bind_host
        public_url = f"https://{_bind(url_host, bind_port)}"
    return replace(settings, host=bind_host, port=bind_port, public_url=public_url)


# glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
M_TRIM_THRESHOLD = -1
TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def tune_malloc() -> bool:
    """Keep the workers' memory from creeping up under large streamed bodies (glibc only).

    Streaming allocates and frees 1 MiB buffers in many threads. glibc raises its
    mmap threshold after such frees, so later buffers come from per-thread
    arenas that keep the freed memory: resident size grows with every large
    transfer (a worker went from 115 to 183 MiB over the repository benchmark).
    A fixed threshold (4 MiB, no longer raised dynamically) and two arenas keep
    it near 105 MiB (bench/README.md). The trim threshold (32 MiB) keeps freed
    buffers mapped: at the default 128 KiB glibc handed each freed 1 MiB back
    to the kernel, and the next buffer page-faulted and zeroed it afresh (half
    the workers' system time in WADO-RS). Set before gunicorn forks, so every
    worker inherits it. Answers whether the C library took the settings.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        return (bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(libc.mallopt(M_ARENA_MAX, 2))
                and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))
    except (OSError, AttributeError):
        return False


def companion_commands(settings: Settings) -> list[list[str]]:
    """The `xdshub` commands `serve` runs beside gunicorn, each in its own process.

    `audit export` when hub.toml names ATNA collectors; `publish --watch`
    when quiet-period publishing is on. Separate processes rather than threads
    of the gunicorn master, which forks its workers: a thread holding a lock at
    fork time would hang a worker; and one process each, not one per worker.
    """
    xdshub = [sys.executable, "-c", "from hub.cli import main; main()"]
    data_dir = ["--data-dir", str(settings.data_dir)]
    commands = []
    if settings.audit_collectors:
        commands.append([*xdshub, "audit", "export", *data_dir])
    if settings.publish_quiet_seconds > 0:
        commands.append([*xdshub, "publish", "--watch", *data_dir])
    if settings.dimse_port:
        commands.append([*xdshub, "dimse", "serve", *data_dir, "--host", settings.host,
                         "--port", str(settings.dimse_port)])
    return commands


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the hub over HTTPS until interrupted (blocks)."""
    from hub.logs import configure_logging

    settings = serving_settings(settings, host, port)
    check_files(settings)
    make_ssl_context(settings)  # fail here, clearly, on a bad certificate or key
    prepare_metrics_dir(settings)
    configure_logging(settings.log_level)
    tune_malloc()
    companions = [subprocess.Popen(command) for command in companion_commands(settings)]
    try:
        HubApplication(settings).run()
    finally:
        for process in companions:
            stop_process(process)
