"""Streaming MTOM/XOP: read_multipart (bounded memory, spooled attachments) and render_mtom."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import pytest

from hub.errors import PayloadTooLarge, SenderFault
from hub.soap.mtom import (
    MultipartRequest,
    OutgoingPart,
    content_id_from_href,
    parse_content_type,
    parse_multipart,
    read_multipart,
    render_mtom,
    render_multipart,
    root_part,
    xop_include_href,
)

ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ENVELOPE = b'<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"/>'
BOUNDARY = "b0und4ry"
MiB = 1024 * 1024


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def part(content_id: str | None, content: bytes, *, ctype: str = "application/octet-stream",
         extra: str = "") -> bytes:
    cid = f"Content-ID: <{content_id}>\r\n" if content_id is not None else ""
    return f"Content-Type: {ctype}\r\n{cid}{extra}\r\n".encode() + content


ROOT = part("root@x", ENVELOPE, ctype='application/xop+xml; type="application/soap+xml"')


def body_of(*parts: bytes, close: bool = True, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble + b"".join(f"--{BOUNDARY}\r\n".encode() + p + b"\r\n" for p in parts)
    return out + (f"--{BOUNDARY}--\r\n".encode() + epilogue if close else b"")


class Trickle(io.RawIOBase):
    """A stream answering at most `step` bytes per read, as a socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self.step if size < 0 else min(size, self.step)
        chunk = self.data[self.at:self.at + n]
        self.at += len(chunk)
        return chunk


class Generated(io.RawIOBase):
    """A stream produced piece by piece by a generator: the body never exists whole."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces, self.pending = pieces, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self.pending:
            piece = next(self.pieces, None)
            if piece is None:
                return b""
            self.pending = piece
        chunk, self.pending = self.pending[:size], self.pending[size:]
        return chunk


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[IO[bytes]]:
    """Every temporary file the codec makes, to check that all are closed."""
    made: list[IO[bytes]] = []

    def recording(factory: Callable[..., Any]) -> Callable[..., Any]:
        def make(*args: Any, **kwargs: Any) -> Any:
            made.append(factory(*args, **kwargs))
            return made[-1]
        return make

    monkeypatch.setattr(tempfile, "TemporaryFile", recording(tempfile.TemporaryFile))
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", recording(tempfile.SpooledTemporaryFile))
    return made


def read(body: bytes, start: str | None = "<root@x>", **kwargs: Any) -> MultipartRequest:
    kwargs.setdefault("max_bytes", len(body) + 1)
    return read_multipart(io.BytesIO(body), BOUNDARY, start, **kwargs)


def summary(request: MultipartRequest) -> tuple[bytes, dict[str, tuple[str, int, str, str, bytes]]]:
    return request.root.content, {cid: (a.content_type, a.size, a.sha1, a.sha256, a.open().read())
                                  for cid, a in request.attachments.items()}


def test_render_then_read_round_trips(tmp_path: Path) -> None:
    documents = {"doc1@x": (b"%PDF-1.4 small", "application/pdf"), "empty@x": (b"", "text/plain"),
                 "big.doc+1@x": (data_of(5 * MiB), "application/dicom")}
    parts = [OutgoingPart(cid, ctype, len(data), partial(io.BytesIO, data))
             for cid, (data, ctype) in documents.items()]
    message = render_mtom(ENVELOPE, ACTION, parts)
    body = b"".join(message.chunks())
    assert message.content_length == len(body)
    ctype = parse_content_type(message.content_type)
    assert ctype.media_type == "multipart/related"
    assert ctype.params["type"] == "application/xop+xml" and ctype.params["action"] == ACTION
    with read_multipart(io.BytesIO(body), ctype.params["boundary"], ctype.params["start"], max_bytes=len(body),
                        spool_dir=tmp_path) as request:
        assert request.root.content == ENVELOPE
        assert parse_content_type(request.root.headers["content-type"]).media_type == "application/xop+xml"
        assert list(request.attachments) == list(documents)
        for cid, (data, media_type) in documents.items():
            attachment = request.attachments[cid]
            assert attachment.open().read() == data
            assert (attachment.content_type, attachment.size) == (media_type, len(data))
            assert attachment.sha1 == hashlib.sha1(data).hexdigest()
            assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert all(a.file.closed for a in request.attachments.values())
    assert list(tmp_path.iterdir()) == []


def test_small_reads_parse_identically() -> None:
    # Contents that hold almost-delimiters, so that every prefix of one straddles some read edge.
    tricky = f"a\r\n--{BOUNDARY[:-1]}X\r\n-\r\n--\r\n--{BOUNDARY[:4]}".encode() * 3 + data_of(3000)
    body = body_of(ROOT, part("one@x", tricky), part("two@x", b"\r\n"), part("three@x", b""),
                   preamble=b"preamble, ignored\r\n", epilogue=b"epilogue, ignored")
    with read(body) as whole:
        expected = summary(whole)
    assert expected[1]["one@x"][4] == tricky and expected[1]["two@x"][4] == b"\r\n"
    for step in (1, 7):
        stream = Trickle(body, step)
        with read_multipart(cast(BinaryIO, stream), BOUNDARY, "root@x", max_bytes=len(body), chunk_size=16) as trickled:
            assert summary(trickled) == expected


def test_root_is_the_first_part_without_start() -> None:
    with read(body_of(part(None, b"<root/>"), part("a@x", b"A")), start=None) as request:
        assert request.root.content == b"<root/>" and list(request.attachments) == ["a@x"]


def test_start_may_name_a_later_part() -> None:
    with read(body_of(part("a@x", b"A"), ROOT)) as request:
        assert request.root.content == ENVELOPE and list(request.attachments) == ["a@x"]


def test_base64_part_is_decoded() -> None:
    data = data_of(100_000, seed=2)
    encoded = base64.encodebytes(data)          # 76-character lines
    body = body_of(ROOT, part("b64@x", encoded, extra="Content-Transfer-Encoding: base64\r\n"))
    stream = cast(BinaryIO, Trickle(body, 7))
    with read_multipart(stream, BOUNDARY, "root@x", max_bytes=len(body), chunk_size=1000) as request:
        attachment = request.attachments["b64@x"]
        assert attachment.open().read() == data
        assert attachment.size == len(data) and attachment.sha1 == hashlib.sha1(data).hexdigest()


BIG = data_of(2 * MiB, seed=3)   # spooled to disk: beyond the in-memory share


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (body_of(ROOT, part("a@x", b"A"), part("big@x", BIG))[:-MiB], "multipart body is truncated"),
        (body_of(ROOT, part("a@x", b"A"), close=False), "multipart body is truncated"),
        (body_of(ROOT, part("a@x", b"A")).replace(b"--\r\n", b"\r\n"), "multipart body is truncated"),
        (b"no delimiter at all", "multipart body is truncated"),
        (body_of(ROOT, part("a@x", b"A"), part("a@x", b"B")), "two MIME parts have the Content-ID <a@x>"),
        (body_of(ROOT, part("a@x", b"A"), part(None, b"B")), "has no Content-ID"),
        (body_of(part("a@x", b"A"), part("b@x", BIG)), "multipart start part <root@x> is not in the body"),
        (body_of(ROOT, part("a@x", b"A"), part("q@x", b"=41", extra="Content-Transfer-Encoding: quoted-printable\r\n")),
         "unsupported Content-Transfer-Encoding 'quoted-printable'"),
        (body_of(ROOT, part("a@x", b"A"), part("b@x", b"QUJD*", extra="Content-Transfer-Encoding: base64\r\n")),
         "invalid base64"),
        (body_of(ROOT, part("a@x", b"A"), b"Content-ID: <b@x>\r\nX-Pad: " + b"p" * 20_000 + b"\r\n\r\nB"),
         "is longer than 16384 bytes"),
        (body_of(ROOT, part("a@x", b"A"), b"Content-ID: <b@x>") + body_of(part("c@x", b"C")),
         "headers do not end with a blank line"),
        (body_of(ROOT, part("a@x", b"A"), b"Content-ID <b@x>\r\n\r\nB"), "malformed MIME part header line"),
        (f"--{BOUNDARY}--\r\n".encode(), "multipart body holds no parts"),
    ],
    ids=["mid-part", "no-closing-delimiter", "ends-after-delimiter", "no-delimiter", "duplicate-content-id",
         "missing-content-id", "start-not-found", "quoted-printable", "bad-base64", "huge-headers",
         "no-blank-line", "bad-header-line", "no-parts"],
)
def test_bad_bodies_are_refused_and_leave_nothing(body: bytes, message: str, tmp_path: Path,
                                                  spooled: list[IO[bytes]]) -> None:
    with pytest.raises(SenderFault) as info:
        read(body, spool_dir=tmp_path)
    assert message in info.value.reason
    assert info.value.http_status == 400
    assert all(f.closed for f in spooled)
    assert list(tmp_path.iterdir()) == []


def test_earlier_parts_are_closed_when_a_later_one_fails(tmp_path: Path, spooled: list[IO[bytes]]) -> None:
    body = body_of(ROOT, part("a@x", b"A"), part("big@x", BIG), part("c@x", b"C"), close=False)
    with pytest.raises(SenderFault, match="truncated"):
        read(body, spool_dir=tmp_path)
    assert len(spooled) >= 3 and all(f.closed for f in spooled)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("max_bytes", "max_root_bytes", "limit"), [(3 * MiB, 1 * MiB, 3 * MiB),
                                                                     (100 * MiB, 16, 16)])
def test_too_large_is_413(max_bytes: int, max_root_bytes: int, limit: int, tmp_path: Path,
                          spooled: list[IO[bytes]]) -> None:
    body = body_of(ROOT, part("a@x", b"A"), part("big@x", BIG), part("big2@x", BIG))
    with pytest.raises(PayloadTooLarge) as info:
        read(body, max_bytes=max_bytes, max_root_bytes=max_root_bytes, spool_dir=tmp_path)
    assert info.value.http_status == 413
    assert info.value.reason == f"request body exceeds the limit of {limit} bytes"
    assert all(f.closed for f in spooled)
    assert list(tmp_path.iterdir()) == []


def test_a_limit_equal_to_the_body_is_enough() -> None:
    body = body_of(ROOT, part("a@x", b"A"))
    with read(body, max_bytes=len(body)) as request:
        assert request.attachments["a@x"].open().read() == b"A"


def test_more_than_a_thousand_parts_are_refused(spooled: list[IO[bytes]]) -> None:
    body = body_of(ROOT, *(part(f"p{n}@x", b"x") for n in range(1000)))
    with pytest.raises(SenderFault, match="more than 1000 parts"):
        read(body)
    assert all(f.closed for f in spooled)


def test_invalid_boundary_is_refused() -> None:
    with pytest.raises(SenderFault, match="boundary is missing or invalid"):
        read_multipart(io.BytesIO(b""), "bad\nboundary", None, max_bytes=10)
    with pytest.raises(SenderFault, match="boundary is missing or invalid"):
        read_multipart(io.BytesIO(b""), "", None, max_bytes=10)


def test_memory_stays_bounded_for_a_64_mib_attachment(tmp_path: Path) -> None:
    piece, count = data_of(64 * 1024, seed=4), 1024          # 64 MiB in all
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(piece)

    def pieces() -> Iterator[bytes]:
        yield f"--{BOUNDARY}\r\n".encode() + ROOT + f"\r\n--{BOUNDARY}\r\n".encode()
        yield b"Content-Type: application/octet-stream\r\nContent-ID: <huge@x>\r\n\r\n"
        for _ in range(count):
            yield piece
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    tracemalloc.start()
    try:
        with read_multipart(cast(BinaryIO, Generated(pieces())), BOUNDARY, "root@x", max_bytes=1 << 30,
                            spool_dir=tmp_path) as request:
            _, peak = tracemalloc.get_traced_memory()
            attachment = request.attachments["huge@x"]
            assert attachment.size == count * len(piece)
            assert attachment.sha256 == expected.hexdigest()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


def test_content_length_is_exact_and_parts_are_closed() -> None:
    streams: list[io.BytesIO] = []

    def opener(data: bytes) -> Callable[[], BinaryIO]:
        def open_() -> BinaryIO:
            streams.append(io.BytesIO(data))
            return streams[-1]
        return open_

    parts = [OutgoingPart("a@x", "text/plain", 3, opener(b"abc")),
             OutgoingPart("b@x", "application/pdf", 3 * MiB, opener(data_of(3 * MiB)))]
    message = render_mtom(ENVELOPE, ACTION, parts)
    chunks = list(message.chunks())
    assert message.content_length == len(b"".join(chunks))
    assert max(len(c) for c in chunks) <= MiB
    assert b"Content-Transfer-Encoding: binary\r\nContent-ID: <b@x>\r\n" in b"".join(chunks)
    assert len(streams) == 2 and all(s.closed for s in streams)


@pytest.mark.parametrize(("declared", "actual"), [(10, 5), (5, 10)])
def test_a_part_of_the_wrong_size_raises(declared: int, actual: int) -> None:
    part_ = OutgoingPart("a@x", "text/plain", declared, lambda: io.BytesIO(b"x" * actual))
    chunks = render_mtom(ENVELOPE, ACTION, [part_]).chunks()
    with pytest.raises(OSError, match="<a@x>"):
        for _ in chunks:
            pass


@pytest.mark.parametrize("content_id", ["bad<id", "", "with space", "line\r\nX-Injected: 1"])
def test_unsafe_content_ids_are_not_rendered(content_id: str) -> None:
    with pytest.raises(ValueError, match="Content-ID"):
        render_mtom(ENVELOPE, ACTION, [OutgoingPart(content_id, "text/plain", 0, io.BytesIO)])


def test_render_multipart_still_round_trips() -> None:
    body, content_type = render_multipart(ENVELOPE, ACTION)
    ctype = parse_content_type(content_type)
    parts = parse_multipart(body, ctype.params["boundary"])
    assert root_part(parts, ctype.params["start"]).content == ENVELOPE and len(parts) == 1


@pytest.mark.parametrize("content_id", ["doc1@x", "a b/c%d@example.org", "é@x"])
def test_xop_href_round_trips(content_id: str) -> None:
    href = xop_include_href(content_id)
    assert href.startswith("cid:") and " " not in href
    assert content_id_from_href(href) == content_id


def test_xop_href_needs_cid() -> None:
    assert xop_include_href("a b@x") == "cid:a%20b@x"
    with pytest.raises(SenderFault, match="not a cid: URL"):
        content_id_from_href("http://example.org/doc")
