"""Sending the audit trail to ATNA syslog collectors over mutual TLS (IHE ITI-20, RFC 5424 / RFC 5425).

The outbox is durable and already there: the `audit_records` table itself,
plus one `audit_export_cursors` row per collector holding the last seq it
was sent. `Exporter.deliver(collector)` opens ONE TLS connection and sends,
in seq order and in batches, every record after that cursor; after a batch
has been written completely (`sendall` returned) the cursor moves to its
last seq and the batch's transaction commits. A failure raises
`CollectorUnavailable` and leaves the cursor at the last complete batch, so
nothing is ever skipped: records stay in the table and are sent again later.
`Exporter.run(stop)` does this for every configured collector until `stop`
is set, backing off per collector (doubling, up to 60 s) while one fails.

The TLS connection (ITI TF-2 3.19.6, ATNA Secure Node): TLS 1.2 or newer;
the collector's certificate is verified, host name included (RFC 6125),
against `audit_collector_ca`; the hub presents `server_cert` / `server_key`
as its client certificate, which must therefore allow clientAuth
(RFC 5280 4.2.1.12) for the collector to accept it.

Only one exporter at a time delivers to a collector, across processes: each
batch runs in a transaction that holds the collector's cursor row with
SELECT ... FOR UPDATE (PostgreSQL). SQLite ignores FOR UPDATE but lets one
writing transaction in at a time (`hub.db`), so there the whole hub waits
while a batch is written; the socket timeout bounds that wait.

What this guarantees, honestly: delivery is at-least-once, and only at the
TCP level. Syslog over TLS has no acknowledgement; `sendall` returning means
the bytes were handed to the kernel, not that the collector stored them. A
crash (of the hub, or of its database connection) between writing a batch
and committing its cursor sends that batch again: every message carries its
seq in structured data (`hub.audit.syslog`), so a collector can drop the
repeat. A collector that loses what it received, or a connection cut after
the last batch was written, loses messages the cursor counts as sent; the
chain in the database remains the record of truth.

With TLS 1.3 the client finishes its handshake before the server has
checked the client certificate, so a collector refusing ours can only say
so afterwards, with an alert. The exporter therefore waits up to
`confirm_timeout` after a TLS 1.3 handshake for such an alert, and checks
for one again before committing each batch (collectors never send data).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.syslog import check_hostname, format_message, frame
from hub.audit.tables import AuditExportCursor, AuditRecord
from hub.db import Database
from hub.settings import Settings

logger = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class CollectorUnavailable(OSError):
    """A collector could not be reached, refused the TLS handshake, or broke the connection.

    `delivered` counts the records sent (and committed) before the failure.
    """

    def __init__(self, collector: str, reason: str, delivered: int = 0) -> None:
        super().__init__(f"audit collector {collector} unavailable: {reason}")
        self.collector = collector
        self.reason = reason
        self.delivered = delivered


def parse_collector(collector: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6 address]:port"."""
    host, colon, port = collector.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"audit collector {collector!r} is not host:port")
    return host, int(port)


def client_context(settings: Settings) -> ssl.SSLContext:
    """TLS client context towards collectors: TLS >= 1.2, verified peer and name, the hub's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)       # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=settings.path(settings.audit_collector_ca))
    context.load_cert_chain(settings.path(settings.server_cert), settings.path(settings.server_key))
    return context


def _peer_alert(sock: ssl.SSLSocket, wait: float) -> str | None:
    """What the collector said within `wait` seconds, if it sent an alert or closed; None if silent.

    `wait` 0 only looks at what has already arrived. Data from the collector is
    ignored (syslog collectors send none).
    """
    previous = sock.gettimeout()
    sock.settimeout(wait)
    try:
        data = sock.recv(1)
    except (ssl.SSLWantReadError, TimeoutError):
        return None
    except OSError as exc:
        return str(exc)
    finally:
        sock.settimeout(previous)
    return "the collector closed the connection" if not data else None


def _lock_cursor(session: Session, collector: str) -> AuditExportCursor:
    """The collector's cursor row, locked for this transaction (created at 0 on first use, race-free)."""
    query = select(AuditExportCursor).where(AuditExportCursor.collector == collector).with_for_update()
    cursor = session.scalar(query)
    if cursor is None:
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        session.execute(insert(AuditExportCursor).values(collector=collector, last_seq=0, updated_at=datetime.now(UTC))
                        .on_conflict_do_nothing(index_elements=["collector"]))
        cursor = session.scalar(query)
        assert cursor is not None
    return cursor


class Exporter:
    """Delivers the audit trail to the configured collectors (see the module docstring).

    The TLS context is built once, here: missing or unreadable certificate files
    fail at construction (OSError, ssl.SSLError); renewed files need a new Exporter.
    `hostname` is the syslog HOSTNAME (default: this host's FQDN).
    """

    def __init__(self, database: Database, settings: Settings, hostname: str | None = None, batch: int = 500,
                 connect_timeout: float = 5.0, confirm_timeout: float = 0.5) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.database = database
        self.settings = settings
        self.hostname = check_hostname(socket.getfqdn() if hostname is None else hostname)
        self.batch = batch
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self.context = client_context(settings)

    def cursor(self, collector: str) -> int:
        """The last seq sent to `collector` (0: nothing yet)."""
        with self.database.session() as session:
            row = session.get(AuditExportCursor, collector)
            return row.last_seq if row is not None else 0

    def pending(self, collector: str) -> bool:
        """Whether records after the collector's cursor exist (no connection is opened otherwise)."""
        with self.database.session() as session:
            last = session.scalar(select(AuditExportCursor.last_seq).where(AuditExportCursor.collector == collector))
            first = session.scalar(select(AuditRecord.seq).where(AuditRecord.seq > (last or 0)).limit(1))
            return first is not None

    def _connect(self, collector: str) -> ssl.SSLSocket:
        host, port = parse_collector(collector)
        try:
            raw = socket.create_connection((host, port), timeout=self.connect_timeout)
        except OSError as exc:
            raise CollectorUnavailable(collector, f"cannot connect: {exc}") from exc
        try:
            sock = self.context.wrap_socket(raw, server_hostname=host)
        except OSError as exc:                       # ssl.SSLError and SSLCertVerificationError included
            raw.close()
            raise CollectorUnavailable(collector, f"TLS handshake failed: {exc}") from exc
        if sock.version() == "TLSv1.3":
            alert = _peer_alert(sock, self.confirm_timeout)
            if alert is not None:
                sock.close()
                raise CollectorUnavailable(collector, f"TLS handshake refused: {alert}")
        return sock

    def _send_batch(self, sock: ssl.SSLSocket, collector: str, delivered: int) -> int:
        """Send the next batch in one transaction holding the cursor row; the number of records sent."""
        with self.database.session() as session:
            cursor = _lock_cursor(session, collector)
            records: Sequence[AuditRecord] = session.scalars(
                select(AuditRecord).where(AuditRecord.seq > cursor.last_seq)
                .order_by(AuditRecord.seq).limit(self.batch)).all()
            if not records:
                return 0
            payload = b"".join(frame(format_message(record, self.hostname)) for record in records)
            try:
                sock.sendall(payload)
            except OSError as exc:
                raise CollectorUnavailable(collector, f"sending failed: {exc}", delivered) from exc
            alert = _peer_alert(sock, 0.0)
            if alert is not None:
                raise CollectorUnavailable(collector, alert, delivered)
            cursor.last_seq = records[-1].seq
            cursor.updated_at = datetime.now(UTC)
            return len(records)

    def deliver(self, collector: str, stop: threading.Event | None = None) -> int:
        """Send every record after the collector's cursor, in seq order, over one connection; how many were sent.

        Raises CollectorUnavailable (cursor at the last complete batch) when the
        collector cannot be reached or breaks off. `stop` ends after the current batch.
        """
        if not self.pending(collector):
            return 0
        delivered = 0
        with self._connect(collector) as sock:
            while stop is None or not stop.is_set():
                sent = self._send_batch(sock, collector, delivered)
                delivered += sent
                if sent < self.batch:
                    break
            self._close(sock)
        return delivered

    def _close(self, sock: ssl.SSLSocket) -> None:
        """Send TLS close_notify, as the initiator of a closure must (RFC 5425 4.4); best effort."""
        sock.settimeout(self.confirm_timeout)
        try:
            sock.unwrap()
        except OSError:
            pass                                     # the records are sent; the collector just closed first

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Deliver to every configured collector every `interval` seconds until `stop` is set.

        A failing collector is retried after interval, 2 x interval, ... up to
        MAX_BACKOFF seconds; the others are not held up by it.
        """
        backoff: dict[str, float] = {}
        retry_at: dict[str, float] = {}
        while not stop.is_set():
            for collector in self.settings.audit_collectors:
                if stop.is_set():
                    break
                if retry_at.get(collector, 0.0) > time.monotonic():
                    continue
                try:
                    sent = self.deliver(collector, stop)
                except Exception as exc:         # the loop must outlive any one failure, database ones too
                    delay = min(MAX_BACKOFF, max(interval, backoff.get(collector, 0.0) * 2))
                    backoff[collector], retry_at[collector] = delay, time.monotonic() + delay
                    if isinstance(exc, CollectorUnavailable):
                        logger.warning("%s; retrying in %.0f s", exc, delay)
                    else:
                        logger.exception("audit export to %s failed; retrying in %.0f s", collector, delay)
                else:
                    backoff.pop(collector, None)
                    retry_at.pop(collector, None)
                    if sent:
                        logger.info("sent %d audit records to %s", sent, collector)
            stop.wait(interval)
