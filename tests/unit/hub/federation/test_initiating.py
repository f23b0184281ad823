"""The initiating gateway's fan-out against peers on loopback over real TLS: one that answers, one that answers
garbage, one that never answers, one whose certificate comes from a CA the bundle does not trust, one that is
down. The well-behaved peer here is a small HTTPS server speaking just enough (token endpoint, a fixed
AdhocQueryResponse); tests/functional/test_federation.py runs real hubs."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lxml import etree

from hub.federation.initiating import ask_peers, merge_answers
from hub.federation.peers import PeerTarget
from hub.security.pki import certificate_pem, make_ca, make_server_certificate, private_key_pem
from hub.soap.envelope import serialize
from registry.ebrim import names as n
from registry.ebrim.render import render_adhoc_query_request, render_adhoc_query_response
from registry.model import StoredQuery
from registry.vocabulary import ResponseStatus
from tests.schema_validation import assert_valid

HOME = "urn:oid:1.3.6.1.4.1.21367.2026.300"
REMOTE_ID = "urn:uuid:6f8e5a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
LOCAL_ID = "urn:uuid:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TIMEOUT = 2.0
HANG_SECONDS = 8.0


def _answer(object_id: str) -> bytes:
    body = render_adhoc_query_response(ResponseStatus.SUCCESS, None, [object_id], [])
    envelope = etree.Element("{http://www.w3.org/2003/05/soap-envelope}Envelope")
    etree.SubElement(envelope, "{http://www.w3.org/2003/05/soap-envelope}Body").append(body)
    return serialize(envelope)


class PeerHandler(BaseHTTPRequestHandler):
    mode = "good"
    tokens = 0          # token requests served, by all peers

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:   # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/oauth/token":
            PeerHandler.tokens += 1
            self._send(200, "application/json", json.dumps({"access_token": "t", "expires_in": 60}).encode())
        elif self.mode == "hang":
            time.sleep(HANG_SECONDS)
        elif self.mode == "garbage":
            self._send(200, "application/soap+xml", b"<html>this is not SOAP")
        elif b"AdhocQueryRequest" not in body:      # what a real peer says to an empty query
            self._send(400, "text/plain", b"no query in the body")
        else:
            self._send(200, "application/soap+xml", _answer(REMOTE_ID))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Pki:
    folder: Path
    trusted: tuple[bytes, bytes, bytes]     # CA, server certificate, server key
    foreign: tuple[bytes, bytes, bytes]


def _chain(name: str) -> tuple[bytes, bytes, bytes]:
    ca, ca_key = make_ca(name)
    cert, key = make_server_certificate(ca, ca_key)
    return certificate_pem(ca), certificate_pem(cert), private_key_pem(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("peers"), _chain("peer CA"), _chain("somebody else's CA"))


def _serve(pki: Pki, mode: str, chain: tuple[bytes, bytes, bytes]) -> tuple[ThreadingHTTPServer, int]:
    folder = pki.folder / f"server-{mode}"
    folder.mkdir(exist_ok=True)
    (folder / "cert.pem").write_bytes(chain[1])
    (folder / "key.pem").write_bytes(chain[2])
    handler = type(f"{mode.title()}Peer", (PeerHandler,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _bundle(pki: Pki, name: str, port: int) -> Path:
    """A bundle as `xdshub org add` writes it; the client certificate is any (these peers do not ask)."""
    folder = pki.folder / f"bundle-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "ca.crt").write_bytes(pki.trusted[0])
    (folder / "client.crt").write_bytes(pki.trusted[1])
    (folder / "client.key").write_bytes(pki.trusted[2])
    (folder / "client.json").write_text(json.dumps({
        "client_id": "c", "client_secret": "s", "token_url": f"https://127.0.0.1:{port}/oauth/token",
        "base_url": f"https://127.0.0.1:{port}", "scopes": "xds:query"}))
    return folder


@pytest.fixture(scope="module")
def peers(pki: Pki) -> Iterator[dict[str, PeerTarget]]:
    servers = []
    targets = {}
    for index, (mode, chain) in enumerate((("good", pki.trusted), ("garbage", pki.trusted), ("hang", pki.trusted),
                                           ("untrusted", pki.foreign))):
        server, port = _serve(pki, "good" if mode == "untrusted" else mode, chain)
        servers.append(server)
        targets[mode] = PeerTarget(mode, f"urn:oid:1.3.6.1.4.1.21367.2026.31{index}", f"https://127.0.0.1:{port}",
                                   _bundle(pki, mode, port))
    closed = ThreadingHTTPServer(("127.0.0.1", 0), PeerHandler)
    port = closed.server_address[1]
    closed.server_close()        # nothing listens there any more
    targets["down"] = PeerTarget("down", "urn:oid:1.3.6.1.4.1.21367.2026.319", f"https://127.0.0.1:{port}",
                                 _bundle(pki, "down", port))
    yield targets
    for server in servers:
        server.shutdown()
        server.server_close()


def _request() -> etree._Element:
    return render_adhoc_query_request(StoredQuery("urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", "ObjectRef", {
        "$XDSDocumentEntryPatientId": [["'P-1^^^&1.3.6.1.4.1.21367.2026.77&ISO'"]],
        "$XDSDocumentEntryStatus": [["('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"]]}))


def test_every_peer_is_asked_and_the_bad_ones_are_named(peers: dict[str, PeerTarget]) -> None:
    answers = {a.peer.name: a for a in ask_peers(list(peers.values()), _request(), TIMEOUT)}
    assert answers["good"].failure is None and answers["good"].response is not None
    assert (answers["garbage"].failure or "").startswith("its answer is not a SOAP message")
    assert answers["hang"].failure == f"no answer within {TIMEOUT:g} s" and answers["hang"].response is None
    assert "CERTIFICATE_VERIFY_FAILED" in (answers["untrusted"].failure or "")
    assert (answers["down"].failure or "").startswith("ConnectionError")


def test_a_peer_that_never_answers_is_left_at_the_timeout(peers: dict[str, PeerTarget]) -> None:
    """The fan-out returns with the hanging peer named, long before the peer would have answered."""
    started = time.monotonic()
    (answer,) = ask_peers([peers["hang"]], _request(), TIMEOUT)
    assert answer.failure is not None and time.monotonic() - started < HANG_SECONDS


def test_answers_merge_with_homes_stamped_and_unavailable_communities_reported(peers: dict[str, PeerTarget]) -> None:
    answers = ask_peers([peers["good"], peers["down"]], _request(), TIMEOUT)
    local = render_adhoc_query_response(ResponseStatus.SUCCESS, None, [LOCAL_ID], [])
    merged = merge_answers(local, HOME, answers)
    assert_valid(merged)
    assert merged.get("status") == ResponseStatus.PARTIAL_SUCCESS.value
    refs = {ref.get("id"): ref.get("home") for ref in merged.iter(n.OBJECT_REF)}
    assert refs == {LOCAL_ID: HOME, REMOTE_ID: peers["good"].home_community_id}
    (error,) = merged.iter(n.REGISTRY_ERROR)
    assert error.get("errorCode") == "XDSUnavailableCommunity"
    assert error.get("location") == peers["down"].home_community_id


def test_the_same_object_from_two_places_is_listed_once(peers: dict[str, PeerTarget]) -> None:
    answers = ask_peers([peers["good"]], _request(), TIMEOUT)
    local = render_adhoc_query_response(ResponseStatus.SUCCESS, None, [REMOTE_ID], [])
    merged = merge_answers(local, HOME, answers)
    assert [ref.get("id") for ref in merged.iter(n.OBJECT_REF)] == [REMOTE_ID]
    assert merged.get("status") == ResponseStatus.SUCCESS.value


def test_all_peers_down_and_the_local_query_failed_is_a_failure(peers: dict[str, PeerTarget]) -> None:
    answers = ask_peers([peers["down"]], _request(), TIMEOUT)
    local = render_adhoc_query_response(ResponseStatus.FAILURE, None, None, [])
    assert merge_answers(local, HOME, answers).get("status") == ResponseStatus.FAILURE.value


def test_several_peers_each_get_the_whole_query_and_clients_are_reused(pki: Pki,
                                                                      peers: dict[str, PeerTarget]) -> None:
    """One request element for many peers: each must still send the whole query (it is copied per peer),
    and a second fan-out reuses the peers' connections and tokens."""
    more = []
    for index in range(3):
        server, port = _serve(pki, "good", pki.trusted)
        more.append((server, PeerTarget(f"good-{index}", f"urn:oid:1.3.6.1.4.1.21367.2026.32{index}",
                                        f"https://127.0.0.1:{port}", _bundle(pki, f"good-{index}", port))))
    try:
        targets = [peers["good"], *(target for _, target in more)]
        request = _request()
        for _ in range(5):
            answers = ask_peers(targets, request, TIMEOUT)
            assert [a.failure for a in answers] == [None] * len(targets)
            assert request.getparent() is None       # not moved into one peer's envelope under the others
        tokens = PeerHandler.tokens
        ask_peers(targets, request, TIMEOUT)
        assert PeerHandler.tokens == tokens                  # no new token: the clients were kept
    finally:
        for server, _ in more:
            server.shutdown()
            server.server_close()
