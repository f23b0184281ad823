"""A client of an xdshub (or any IUA + mTLS XDS.b endpoint) from a client bundle.

The bundle is the folder `xdshub org add` writes: client.crt, client.key,
ca.crt and client.json. The demo, the benchmarks, federation and the tests
speak to a hub through this one class: mutual TLS with the organisation's
certificate, a certificate-bound access token from the token endpoint
(client_secret_basic), SOAP 1.2 with WS-Addressing.
"""

from __future__ import annotations

import copy
import json
import queue
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import requests
from lxml import etree

from hub.soap.envelope import NS_SOAP12, NS_WSA, parse_xml, render_envelope, serialize
from hub.soap.mtom import Attachment, OutgoingPart, parse_content_type, read_multipart, render_mtom

SOAP_CONTENT_TYPE = 'application/soap+xml; charset=UTF-8; action="{action}"'


@dataclass
class SoapAnswer:
    status: int
    envelope: etree._Element
    attachments: dict[str, Attachment] = field(default_factory=dict)   # MTOM parts of the answer, by Content-ID

    def close(self) -> None:
        for attachment in self.attachments.values():
            attachment.file.close()

    @property
    def body(self) -> etree._Element:
        body = self.envelope.find(f"{{{NS_SOAP12}}}Body")
        assert body is not None
        return next(c for c in body if isinstance(c.tag, str))

    @property
    def action(self) -> str:
        return self.envelope.findtext(f"{{{NS_SOAP12}}}Header/{{{NS_WSA}}}Action") or ""


class HubClient:
    def __init__(self, bundle: Path | str, base_url: str | None = None, timeout: float = 30.0) -> None:
        bundle = Path(bundle)
        self.config = json.loads((bundle / "client.json").read_text())
        self.base_url = (base_url or self.config["base_url"]).rstrip("/")
        self.token_url = self.config["token_url"] if base_url is None else f"{self.base_url}/oauth/token"
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE must not replace the hub CA
        self.http.cert = (str(bundle / "client.crt"), str(bundle / "client.key"))
        self.http.verify = str(bundle / "ca.crt")
        self._token: str | None = None
        self._token_expiry = 0.0
        self._token_scope = ""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def token(self, scope: str | None = None) -> str:
        scope = scope or self.config.get("scopes", "")
        if self._token and scope == self._token_scope and time.time() < self._token_expiry - 30:
            return self._token
        response = self.http.post(
            self.token_url,
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(self.config["client_id"], self.config["client_secret"]),
            timeout=self.timeout,
        )
        response.raise_for_status()
        data = response.json()
        self._token, self._token_scope = data["access_token"], scope
        self._token_expiry = time.time() + float(data.get("expires_in", 60))
        return self._token

    def soap(self, path: str, action: str, body: etree._Element, scope: str | None = None) -> SoapAnswer:
        """POST a SOAP 1.2 request with WS-Addressing and a bearer token; parse the answer."""
        return self.soap_url(self.base_url + path, action, body, scope)

    def soap_url(self, url: str, action: str, body: etree._Element, scope: str | None = None) -> SoapAnswer:
        """`soap` to a full endpoint URL (a registry configured by URL)."""
        envelope = render_envelope(action, copy.deepcopy(body), to=url)   # the caller's element stays where it is
        response = self.http.post(
            url,
            data=serialize(envelope),
            headers={
                "Content-Type": SOAP_CONTENT_TYPE.format(action=action),
                "Authorization": f"Bearer {self.token(scope)}",
            },
            timeout=self.timeout,
        )
        return SoapAnswer(response.status_code, parse_xml(response.content))

    def api(self, method: str, path: str, body: Any = None, scope: str | None = None) -> requests.Response:
        """A call of the hub's JSON API (`/api/...`) with a bearer token; the answer as requests gives it."""
        return self.http.request(method, self.base_url + path, json=body, timeout=self.timeout,
                                 headers={"Authorization": f"Bearer {self.token(scope)}"})

    def mtom(self, path: str, action: str, body: etree._Element, parts: Sequence[OutgoingPart] = (),
             scope: str | None = None) -> SoapAnswer:
        """POST an MTOM/XOP request (ITI TF-2x V.3), streaming `parts` chunked; the answer may be MTOM too."""
        envelope = serialize(render_envelope(action, copy.deepcopy(body), to=self.base_url + path))
        message = render_mtom(envelope, action, list(parts))
        response = self.http.post(
            self.base_url + path,
            data=message.chunks(),
            headers={"Content-Type": message.content_type, "Authorization": f"Bearer {self.token(scope)}"},
            timeout=self.timeout, stream=True,
        )
        with response:
            return read_answer(response)


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ClientPool(Generic[C]):
    """Idle clients per destination (a kept TLS connection and a cached token each), one request at a time each.

    `client(key, connect)` lends an idle client of `key`, or a new one from
    `connect`; it goes back when the block ends, and is closed instead when
    the block raises: a broken connection or a stale token is not kept.
    """

    def __init__(self) -> None:
        self._idle: dict[Hashable, queue.SimpleQueue[C]] = {}

    @contextmanager
    def client(self, key: Hashable, connect: Callable[[], C]) -> Iterator[C]:
        idle = self._idle.setdefault(key, queue.SimpleQueue())
        try:
            client = idle.get_nowait()
        except queue.Empty:
            client = connect()
        try:
            yield client
        except BaseException:
            client.close()
            raise
        idle.put(client)

    def close(self) -> None:
        for idle in self._idle.values():
            while not idle.empty():
                idle.get_nowait().close()


def read_answer(response: requests.Response, max_bytes: int = 1 << 40) -> SoapAnswer:
    """A SOAP answer, plain or MTOM; MTOM parts are spooled to temporary files (close() frees them)."""
    ctype = parse_content_type(response.headers.get("Content-Type"))
    if ctype.media_type != "multipart/related":
        return SoapAnswer(response.status_code, parse_xml(response.content))
    multipart = read_multipart(response.raw, ctype.params.get("boundary", ""), ctype.params.get("start"),
                               max_bytes=max_bytes)
    return SoapAnswer(response.status_code, parse_xml(multipart.root.content), multipart.attachments)


def wait_until_healthy(url: str, ca: Path | str, seconds: float = 60.0,
                       alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll `url`/healthz over TLS (verified with `ca`) until it answers 200.

    False when `seconds` pass or `alive()` turns false (the server process died).
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with requests.get(f"{url}/healthz", verify=str(ca), timeout=2) as response:
                if response.status_code == 200:
                    return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False
