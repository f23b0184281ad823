"""ITI-20 export: RFC 5424 messages in RFC 5425 frames, delivered over mutual TLS to a real collector on loopback.

The collector is a TLS syslog receiver in a thread (`Receiver`): it requires
and verifies a client certificate and parses octet-counted frames. The PKI
is made with `hub.security.pki`: a test CA signing the collector's
certificate (127.0.0.1 / localhost) and the hub's client certificate, and a
second, unrelated CA for the collectors that must be refused.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from hub.audit import events
from hub.audit.chain import Entry, append
from hub.audit.events import Party
from hub.audit.export import CollectorUnavailable, Exporter, parse_collector
from hub.audit.message import AuditEvent, Outcome, render_audit_message
from hub.audit.syslog import (
    BOM,
    FramingError,
    check_hostname,
    escape_param_value,
    format_message,
    frame,
    parse_frames,
    priority,
)
from hub.audit.tables import AuditRecord
from hub.db import Database
from hub.security.pki import (
    certificate_pem,
    init_pki,
    issue_client_certificate,
    make_ca,
    make_server_certificate,
    private_key_pem,
)
from hub.settings import Settings
from tests.conftest import SCHEMAS

WAIT = 30.0                                  # generous: every wait ends as soon as its condition holds
HOSTNAME = "hub.example.org"
REQUESTOR = Party(user_id="1.2.840.99999.1", address="192.0.2.10", name="Org A", alternative_id="client-a")
HUB = Party(user_id="https://hub.example.org/xds/registry", address="hub.example.org")
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
# What a syslog receiver sees: PRI, VERSION 1, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, our SD element, BOM.
SYSLOG = re.compile(rb'<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[xdshub@32473 seq="(\d+)"\] ' + BOM)
PARSER = etree.XMLParser(no_network=True, resolve_entities=False)


# -- a test PKI made by the project's own PKI module ------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    settings: Settings                     # the hub: collectors verified against ca.crt, hub-client.crt presented
    ca: Path                               # signs the collector's and the hub's certificates
    collector: tuple[Path, Path]           # certificate and key for 127.0.0.1 / localhost
    wrong_name: tuple[Path, Path]          # same CA, but for collector.example only
    rogue_ca: Path                         # an unrelated CA
    rogue_collector: tuple[Path, Path]     # 127.0.0.1 / localhost, signed by the unrelated CA


def _write(folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    (folder / f"{name}.crt").write_bytes(certificate_pem(cert))
    (folder / f"{name}.key").write_bytes(private_key_pem(key))
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.fixture
def pki(settings: Settings) -> Pki:
    folder = settings.path(Path("pki"))
    folder.mkdir(parents=True)
    ca_cert, ca_key = make_ca("xdshub test CA")
    ca_path, _ = _write(folder, "ca", ca_cert, ca_key)
    init_pki(settings)                     # the hub's own files (server.crt, ...) issued by the test CA
    client_pem, client_key_pem = issue_client_certificate(settings, "xdshub hub", "1.3.6.1.4.1.21367.2026.1")
    (folder / "hub-client.crt").write_bytes(client_pem)
    (folder / "hub-client.key").write_bytes(client_key_pem)
    rogue_cert, rogue_key = make_ca("someone else's CA")
    rogue_path, _ = _write(folder, "rogue-ca", rogue_cert, rogue_key)
    hub_settings = replace(settings, server_cert=Path("pki/hub-client.crt"), server_key=Path("pki/hub-client.key"),
                           audit_collector_ca=Path("pki/ca.crt"))
    return Pki(
        settings=hub_settings, ca=ca_path,
        collector=_write(folder, "collector", *make_server_certificate(ca_cert, ca_key)),
        wrong_name=_write(folder, "wrong-name", *make_server_certificate(ca_cert, ca_key, ("collector.example",), ())),
        rogue_ca=rogue_path,
        rogue_collector=_write(folder, "rogue-collector", *make_server_certificate(rogue_cert, rogue_key)))


# -- a real TLS syslog receiver (RFC 5425) -----------------------------------------------------------------------

class _Connection(socketserver.BaseRequestHandler):
    server: Receiver

    def handle(self) -> None:
        self.request.settimeout(WAIT)
        try:
            conn = self.server.context.wrap_socket(self.request, server_side=True)
        except OSError as exc:
            self.server.note(refused=str(exc))
            return
        self.server.note(connected=True)
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                messages, buffer = parse_frames(buffer + data)
                self.server.note(messages=messages)


class Receiver(socketserver.ThreadingTCPServer):
    """Accepts mutual-TLS connections, keeps every syslog message received, in arrival order."""

    allow_reuse_address = True

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", port), _Connection)
        self.context = context
        self.messages: list[bytes] = []
        self.refusals: list[str] = []
        self.connections = 0
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def collector(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def note(self, messages: list[bytes] | None = None, refused: str | None = None, connected: bool = False) -> None:
        with self.changed:
            self.messages.extend(messages or ())
            self.refusals.extend([refused] if refused else [])
            self.connections += connected
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[Receiver], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: condition(self), WAIT), "the receiver never saw what was expected"

    def seqs(self) -> list[int]:
        with self.changed:
            return [parse(message).seq for message in self.messages]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(WAIT)


StartReceiver = Callable[..., Receiver]


@pytest.fixture
def start_receiver(pki: Pki) -> Iterator[StartReceiver]:
    """start_receiver(certificate=pki.collector, client_ca=pki.ca, port=0, tls_max=None) -> a running Receiver."""
    running: list[Receiver] = []

    def start(certificate: tuple[Path, Path] | None = None, client_ca: Path | None = None, port: int = 0,
              tls_max: ssl.TLSVersion | None = None) -> Receiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls_max is not None:
            context.maximum_version = tls_max
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca or pki.ca)
        context.load_cert_chain(*(certificate or pki.collector))
        receiver = Receiver(port, context)
        running.append(receiver)
        return receiver

    yield start
    for receiver in running:
        receiver.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- audit records made the way the hub makes them ---------------------------------------------------------------

OUTCOMES = [Outcome.SUCCESS, Outcome.MINOR_FAILURE, Outcome.SERIOUS_FAILURE, Outcome.MAJOR_FAILURE]


def audit_event(n: int) -> AuditEvent:
    time = datetime(2024, 5, 1, 10, 17, 39, 575123, tzinfo=UTC) + timedelta(seconds=n)
    outcome = OUTCOMES[n % len(OUTCOMES)]
    if n % 2:
        return events.register(requestor=REQUESTOR, hub=HUB, outcome=outcome, time=time,
                               source_id="https://hub.example.org", submission_set_uid=f"1.2.3.{n}",
                               patient_id=PATIENT, description='naïve «register» "]\\')
    return events.stored_query(requestor=REQUESTOR, hub=HUB, outcome=outcome, time=time,
                               source_id="https://hub.example.org",
                               query_id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
                               query_xml=b"<AdhocQueryRequest/>", patient_id=PATIENT, home_community_id=None)


def add_records(database: Database, count: int) -> None:
    with database.session() as session:
        for n in range(count):
            event = audit_event(n)
            append(session, Entry(event_id=event.event_id.code, event_type=event.type_codes[0].code,
                                  action=event.action.value, outcome=int(event.outcome),
                                  message=render_audit_message(event).decode("utf-8"),
                                  patient_id=PATIENT))


def stored_records(database: Database) -> dict[int, AuditRecord]:
    with database.session() as session:
        return {record.seq: record for record in session.query(AuditRecord).order_by(AuditRecord.seq)}


@dataclass(frozen=True)
class Received:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    seq: int
    xml: bytes


def parse(message: bytes) -> Received:
    """A received SYSLOG-MSG read independently of the code under test."""
    match = SYSLOG.match(message)
    assert match is not None, message[:200]
    pri, stamp, host, app, procid, msgid, seq = match.groups()
    return Received(int(pri), stamp.decode(), host.decode(), app.decode(), procid.decode(), msgid.decode(),
                    int(seq), message[match.end():])


@lru_cache(maxsize=1)
def audit_schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path, PARSER))


def assert_valid_audit_message(xml: bytes) -> None:
    """DICOM PS3.15 A.5.1 (dicom2017c.xsd) when XDSHUB_SCHEMAS is set; well-formed XML otherwise."""
    root = etree.fromstring(xml, PARSER)
    if SCHEMAS:
        schema = audit_schema(str(Path(SCHEMAS) / "audit" / "dicom2017c.xsd"))
        assert schema.validate(root), "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)


# -- syslog.py: the message and its framing ----------------------------------------------------------------------

@pytest.mark.parametrize(("outcome", "pri"), [(0, 85), (4, 84), (8, 84), (12, 84)])
def test_priority_is_authpriv_notice_for_success_and_warning_for_failures(outcome: int, pri: int) -> None:
    assert priority(outcome) == pri                 # 10 * 8 + 5 (notice) / + 4 (warning)


@pytest.mark.parametrize("recorded_at", [
    datetime(2024, 5, 1, 10, 17, 39, 5, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 17, 39, 5, tzinfo=timezone(timedelta(hours=2))),  # any zone: written in UTC
    datetime(2024, 5, 1, 10, 17, 39, 5),                                  # SQLite's zone-less UTC
])
def test_format_message_writes_every_rfc5424_field(recorded_at: datetime) -> None:
    record = AuditRecord(seq=123, recorded_at=recorded_at, outcome=8, message="<AuditMessage>é</AuditMessage>")
    message = format_message(record, HOSTNAME)
    assert message == (b'<84>1 2024-05-01T10:17:39.000005Z hub.example.org xdshub - IHE+RFC-3881 '
                       b'[xdshub@32473 seq="123"] ') + BOM + "<AuditMessage>é</AuditMessage>".encode()


def test_param_values_are_escaped() -> None:
    assert escape_param_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'


@pytest.mark.parametrize(("hostname", "expected"), [("", "-"), ("hub.example.org", "hub.example.org"),
                                                    ("2001:db8::1", "2001:db8::1")])
def test_hostnames(hostname: str, expected: str) -> None:
    assert check_hostname(hostname) == expected


@pytest.mark.parametrize("hostname", ["hub example", "hüb", "x" * 256, "tab\there"])
def test_hostnames_syslog_cannot_carry_are_refused(hostname: str) -> None:
    with pytest.raises(ValueError, match="HOSTNAME"):
        check_hostname(hostname)


def test_frames_survive_any_split() -> None:
    messages = [b"<85>1 a", "<84>1 ü [x] é".encode(), b"x" * 1000]
    wire = b"".join(frame(m) for m in messages)
    assert wire.startswith(b"7 <85>1 a")
    received, rest = [], b""
    for i in range(len(wire)):                                  # one byte at a time: every split point
        complete, rest = parse_frames(rest + wire[i:i + 1])
        received.extend(complete)
    assert (received, rest) == (messages, b"")
    assert parse_frames(wire[:-1]) == (messages[:2], frame(messages[2])[:-1])


@pytest.mark.parametrize("wire", [b"abc def", b"0 x", b" 5 hello", b"12345678901 x", b"123456789012", b"5x hello"])
def test_bad_frames_are_refused(wire: bytes) -> None:
    with pytest.raises(FramingError):
        parse_frames(wire)


@pytest.mark.parametrize(("collector", "expected"), [("127.0.0.1:6514", ("127.0.0.1", 6514)),
                                                     ("atna.example.org:6514", ("atna.example.org", 6514)),
                                                     ("[::1]:6514", ("::1", 6514))])
def test_collectors_are_host_and_port(collector: str, expected: tuple[str, int]) -> None:
    assert parse_collector(collector) == expected


@pytest.mark.parametrize("collector", ["atna.example.org", ":6514", "host:", "host:0", "host:70000", "host:x"])
def test_collectors_without_a_port_are_refused(collector: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_collector(collector)


# -- export.py: delivery ------------------------------------------------------------------------------------------

def test_records_are_delivered_in_order_over_one_connection(database: Database, pki: Pki,
                                                            start_receiver: StartReceiver) -> None:
    add_records(database, 7)
    receiver = start_receiver()
    exporter = Exporter(database, pki.settings, hostname=HOSTNAME, batch=3)

    assert exporter.deliver(receiver.collector) == 7
    receiver.wait_for(lambda r: len(r.messages) == 7)

    stored = stored_records(database)
    received = [parse(message) for message in receiver.messages]
    assert [r.seq for r in received] == list(range(1, 8))
    assert receiver.connections == 1
    for r in received:
        record = stored[r.seq]
        assert r.pri == (85 if record.outcome == 0 else 84)
        assert (r.hostname, r.app_name, r.procid, r.msgid) == (HOSTNAME, "xdshub", "-", "IHE+RFC-3881")
        assert datetime.strptime(r.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) == (
            record.recorded_at if record.recorded_at.tzinfo else record.recorded_at.replace(tzinfo=UTC))
        assert r.xml == record.message.encode("utf-8")
        assert_valid_audit_message(r.xml)
    assert {r.pri for r in received} == {84, 85}
    assert exporter.cursor(receiver.collector) == 7
    assert exporter.deliver(receiver.collector) == 0                  # nothing new: no connection either
    assert receiver.connections == 1


def test_a_collector_that_is_down_keeps_everything_for_later(database: Database, pki: Pki,
                                                             start_receiver: StartReceiver) -> None:
    add_records(database, 5)
    port = free_port()
    collector = f"127.0.0.1:{port}"
    exporter = Exporter(database, pki.settings, hostname=HOSTNAME, batch=2)

    with pytest.raises(CollectorUnavailable, match=f"audit collector {collector} unavailable: cannot connect"):
        exporter.deliver(collector)
    assert exporter.cursor(collector) == 0

    receiver = start_receiver(port=port)
    assert exporter.deliver(collector) == 5
    assert exporter.deliver(collector) == 0
    receiver.wait_for(lambda r: len(r.messages) == 5)
    assert receiver.seqs() == [1, 2, 3, 4, 5]


def test_a_restarted_exporter_sends_only_new_records(database: Database, pki: Pki,
                                                     start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    add_records(database, 3)
    assert Exporter(database, pki.settings, hostname=HOSTNAME).deliver(receiver.collector) == 3
    add_records(database, 2)

    restarted = Exporter(database, pki.settings, hostname=HOSTNAME)
    assert restarted.deliver(receiver.collector) == 2
    receiver.wait_for(lambda r: len(r.messages) == 5)
    assert receiver.seqs() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("certificate", ["rogue_collector", "wrong_name"])
def test_a_collector_the_hub_cannot_verify_is_refused(database: Database, pki: Pki, start_receiver: StartReceiver,
                                                      certificate: str) -> None:
    add_records(database, 2)
    receiver = start_receiver(certificate=getattr(pki, certificate))
    exporter = Exporter(database, pki.settings, hostname=HOSTNAME)

    with pytest.raises(CollectorUnavailable, match="TLS handshake failed: .*CERTIFICATE_VERIFY_FAILED"):
        exporter.deliver(receiver.collector)
    receiver.wait_for(lambda r: len(r.refusals) == 1)
    assert receiver.messages == []
    assert exporter.cursor(receiver.collector) == 0


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_collector_refusing_the_hub_certificate_gets_nothing(database: Database, pki: Pki,
                                                              start_receiver: StartReceiver,
                                                              tls_max: ssl.TLSVersion) -> None:
    """With TLS 1.3 the refusal is an alert after the client's handshake: the exporter must wait for it."""
    add_records(database, 2)
    receiver = start_receiver(client_ca=pki.rogue_ca, tls_max=tls_max)
    exporter = Exporter(database, pki.settings, hostname=HOSTNAME, confirm_timeout=WAIT)

    with pytest.raises(CollectorUnavailable, match="TLS handshake"):
        exporter.deliver(receiver.collector)
    receiver.wait_for(lambda r: len(r.refusals) == 1)
    assert receiver.messages == []
    assert exporter.cursor(receiver.collector) == 0


def test_the_hub_server_certificate_is_accepted_as_client_certificate(database: Database, pki: Pki,
                                                                      start_receiver: StartReceiver) -> None:
    add_records(database, 1)
    receiver = start_receiver()
    settings = replace(pki.settings, server_cert=Path("pki/server.crt"), server_key=Path("pki/server.key"))
    assert Exporter(database, settings, hostname=HOSTNAME).deliver(receiver.collector) == 1
    assert len(receiver.messages) == 1


def test_two_exporters_at_once_send_each_record_once(database: Database, pki: Pki,
                                                     start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    add_records(database, 60)
    exporters = [Exporter(database, pki.settings, hostname=HOSTNAME, batch=5) for _ in range(2)]
    counts: list[int] = []
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def deliver(exporter: Exporter) -> None:
        try:
            go.wait(WAIT)
            counts.append(exporter.deliver(receiver.collector))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(exporter,)) for exporter in exporters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == [] and sum(counts) == 60
    receiver.wait_for(lambda r: len(r.messages) >= 60)
    assert sorted(receiver.seqs()) == list(range(1, 61))           # none twice, none missing
    assert exporters[0].cursor(receiver.collector) == 60


def test_run_delivers_records_appended_while_it_runs_and_stops_when_told(
        database: Database, pki: Pki, start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    dead = f"127.0.0.1:{free_port()}"                              # a collector that is down holds no one up
    settings = replace(pki.settings, audit_collectors=(dead, receiver.collector))
    exporter = Exporter(database, settings, hostname=HOSTNAME, batch=4, confirm_timeout=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=exporter.run, args=(stop,), kwargs={"interval": 0.05})
    thread.start()
    try:
        add_records(database, 3)
        receiver.wait_for(lambda r: len(r.messages) == 3)
        add_records(database, 6)
        receiver.wait_for(lambda r: len(r.messages) == 9)
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert receiver.seqs() == list(range(1, 10))
    assert exporter.cursor(receiver.collector) == 9
    assert exporter.cursor(dead) == 0


def test_run_backs_off_and_delivers_once_the_collector_is_back(
        database: Database, pki: Pki, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture) -> None:
    add_records(database, 4)
    port = free_port()
    settings = replace(pki.settings, audit_collectors=(f"127.0.0.1:{port}",))
    exporter = Exporter(database, settings, hostname=HOSTNAME, confirm_timeout=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=exporter.run, args=(stop,), kwargs={"interval": 0.05})
    with caplog.at_level(logging.WARNING, logger="hub.audit.export"):
        thread.start()
        try:
            pause = threading.Event()
            for _ in range(int(WAIT / 0.05)):                      # until the first failure was logged
                if any("retrying in" in record.getMessage() for record in caplog.records):
                    break
                pause.wait(0.05)
            else:
                pytest.fail("run never reported the collector as down")
            receiver = start_receiver(port=port)
            receiver.wait_for(lambda r: len(r.messages) == 4)
        finally:
            stop.set()
            thread.join(WAIT)
    assert not thread.is_alive()
    assert receiver.seqs() == [1, 2, 3, 4]
    assert "cannot connect" in caplog.text
