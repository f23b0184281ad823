"""Retrieve forwarding inside one affinity domain: ITI-43 and RAD-69 for the other repositories of the domain.

One registry, many repositories (ITI TF-1 10.1): a consumer finds a document
in the registry, which names the repositoryUniqueId holding it, and asks its
own hub for it. `[repositories]` in hub.toml says where each other
repository of the domain is:

    [repositories."1.3.6.1.4.1.21367.2026.2.1"]
    url = "https://repo-b.example:8443"     # that hub's base URL; default: base_url of the bundle's client.json
    bundle = "peers/repo-b"                 # what `xdshub org add` wrote at that hub for this one
    timeout = 30                            # seconds; optional

A DocumentRequest naming a mapped repository is sent there, grouped per
repository (the groups in parallel), as ITI-43 to `<url>/xds/repository` or
RAD-69 to `<url>/xds/imaging`; a repositoryUniqueId that is neither this
hub's nor mapped stays XDSUnknownRepositoryId (ITI TF-2b 3.43.4.1.3).

- Who asks at the far side: this hub, with the client certificate and OAuth
  client of its bundle (an organisation of that hub, scope xds:retrieve).
  The consumer's identity is not passed on; each side audits its half: the
  far hub records this hub as the requestor, this hub records the consumer
  and lists the forwarded documents in its own ITI-43 / RAD-69 record.
- Visibility: the far repository applies its own rules to this hub's
  organisation there. This hub applies nothing more: it holds neither the
  documents nor their metadata, so what the far hub gives this hub is given
  to any consumer of this hub allowed to retrieve (scope xds:retrieve).
  Restricted documents (confidentialityCode R/V) are therefore answered
  only when the far hub shows them to this hub's organisation.
- The answer is read as it comes: MTOM parts are spooled to temporary files
  (bounded memory), then streamed to the consumer from those files and
  closed (so removed) when the response ends.
- A far repository that cannot be reached, refuses the TLS handshake (a
  certificate its bundle's CA did not sign), refuses the token request,
  answers a SOAP fault or anything but a RetrieveDocumentSetResponse, or
  stays silent for `timeout` seconds (connecting, or between two reads of
  its answer) makes each of its documents an XDSRepositoryError naming the
  repository and the reason; the other documents are still answered. The
  timeout bounds every wait, not the whole transfer, so a large study that
  keeps flowing is not cut.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3
from sqlalchemy.orm import Session

from hub.client import ClientPool
from hub.errors import RepositoryError, SoapFault, XdsError
from hub.federation.xca import (
    ACTION_CROSS_GATEWAY_RETRIEVE,
    ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
)
from hub.federation.xca import RETRIEVE_PATH as XCA_RETRIEVE_PATH
from hub.organisations import BUNDLE_FILES
from hub.settings import Settings
from hub.soap.envelope import NS_SOAP12
from hub.soap.mtom import OutgoingPart
from repository.model import (
    BytesContent,
    DocumentRequest,
    ImagingRequest,
    RetrievedDocument,
    RetrieveResult,
    SeriesRequest,
    StudyRequest,
)
from repository.vocabulary import ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING
from repository.xdsb import RETRIEVE_RESPONSE, parse_retrieve_response, render_imaging_request, render_retrieve_request

__all__ = ["DEFAULT_TIMEOUT", "Forwarder", "Route", "RouteError", "community_routes", "merge_results",
           "repository_routes", "select_documents"]

log = logging.getLogger(__name__)

TABLE = "repositories"                  # the hub.toml table
DEFAULT_TIMEOUT = 30.0                  # seconds: connect, and each wait for the far hub's answer
RETRIEVE_PATH = "/xds/repository"
IMAGING_PATH = "/xds/imaging"
SCOPE = "xds:retrieve"
_KEYS = frozenset({"url", "bundle", "timeout"})
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_MEDIA_TYPE = re.compile(r"[\x21-\x7e]+/[\x20-\x7e]{1,200}")   # what an MTOM part's Content-Type may carry
MAX_PARALLEL = 8


class RouteError(ValueError):
    """A malformed `[repositories]` entry in hub.toml; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Route:
    """Where another repository of the affinity domain is, and how this hub speaks to it."""

    repository_unique_id: str
    url: str                      # base URL of the hub holding it, without a trailing slash
    bundle: Path                  # client bundle of this hub at that hub (absolute)
    timeout: float = DEFAULT_TIMEOUT
    community: str | None = None  # set: another community's responding gateway (XCA), asked with ITI-39 / RAD-75

    @property
    def key(self) -> str:
        return self.community or self.repository_unique_id


def _entry(settings: Settings, repository_unique_id: str, entry: Any) -> Route:
    where = f'hub.toml [{TABLE}."{repository_unique_id}"]'
    if len(repository_unique_id) > 64 or not _OID.fullmatch(repository_unique_id):
        raise RouteError(f"{where}: the key must be a repositoryUniqueId (an OID of at most 64 characters)")
    if repository_unique_id == settings.repository_unique_id:
        raise RouteError(f"{where}: that is this hub's own repositoryUniqueId, answered here")
    if not isinstance(entry, dict):
        raise RouteError(f"{where} must be a table with bundle (and url, timeout)")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise RouteError(f"{where}: unknown key(s) {', '.join(unknown)}; expected url, bundle, timeout")
    bundle = entry.get("bundle")
    if not isinstance(bundle, str) or not bundle.strip():
        raise RouteError(f"{where}: bundle must name a folder: what `xdshub org add` wrote at that hub for this one")
    folder = settings.path(Path(bundle))
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise RouteError(f"{where}: bundle {folder} lacks {', '.join(missing)}")
    url = entry.get("url")
    if url is None:
        try:
            url = json.loads((folder / "client.json").read_text())["base_url"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RouteError(f"{where}: no url, and {folder / 'client.json'} names no base_url ({exc})") from None
    if not isinstance(url, str):
        raise RouteError(f"{where}: url must be a string")
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise RouteError(f"{where}: url {url!r} must be an https:// base URL (mutual TLS), "
                         "without query, fragment or user")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise RouteError(f"{where}: timeout must be a number of seconds, more than 0 and at most 3600")
    return Route(repository_unique_id, url.strip().rstrip("/"), folder.absolute(), float(timeout))


def repository_routes(settings: Settings) -> dict[str, Route]:
    """The `[repositories]` table of hub.toml, checked: repositoryUniqueId → Route. RouteError when malformed."""
    table = settings.extra.get(TABLE, {})
    if not isinstance(table, dict):
        raise RouteError(f'hub.toml: {TABLE} must be a table of tables, [{TABLE}."<repositoryUniqueId>"] '
                         "with url and bundle")
    return {str(key): _entry(settings, str(key), entry) for key, entry in table.items()}


# -- the far side ---------------------------------------------------------------------------------------------

class Answer(Protocol):
    """What `hub.client.SoapAnswer` gives: the HTTP status, the envelope's body, the spooled MTOM parts."""

    status: int
    attachments: Mapping[str, Any]

    @property
    def body(self) -> Any: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """`hub.client.HubClient`, as far as forwarding uses it."""

    def mtom(self, path: str, action: str, body: Any, parts: Sequence[OutgoingPart] = (),
             scope: str | None = None) -> Any: ...

    def close(self) -> None: ...


def _hub_client(route: Route) -> Transport:
    from hub.client import HubClient

    return HubClient(route.bundle, base_url=route.url, timeout=route.timeout)


def _innermost(exc: BaseException) -> str:
    """The cause at the bottom of requests' and urllib3's wrappers, e.g. "[Errno 111] Connection refused"."""
    inner = exc
    for _ in range(8):
        cause = inner.reason if isinstance(inner, urllib3.exceptions.MaxRetryError) else \
            inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        if cause is None or cause is inner:
            break
        inner = cause
    text = " ".join(str(inner).split()).rpartition("Failed to establish a new connection: ")[2]
    return text[:300] or type(inner).__name__


def _reason(exc: BaseException, route: Route) -> str:
    """Why a call of the far hub failed, in words an operator can act on."""
    detail = _innermost(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"the TLS handshake with {route.url} failed (is ca.crt of bundle {route.bundle} the CA of that "
                f"hub, and does that hub trust its client.crt?): {detail}")
    if isinstance(exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return f"{route.url} did not answer within {route.timeout:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"{route.url} cannot be reached: {detail}"
    if isinstance(exc, requests.exceptions.HTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return f"{route.url} refused this hub's token request (HTTP {status}; is bundle {route.bundle} from it?)"
    if isinstance(exc, SoapFault):
        return f"{route.url} answered a malformed message: {exc.reason}"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return f"the connection to {route.url} broke: {detail}"
    return f"{route.url} answered something unusable: {type(exc).__name__}: {detail}"


def _failed(route: Route, uids: Sequence[str], reason: str) -> RetrieveResult:
    return RetrieveResult([], [RepositoryError(f"repository {route.repository_unique_id}: {reason}", uid)
                               for uid in uids])


def _answer_trouble(answer: Answer, route: Route) -> str | None:
    """Why an answer is no RetrieveDocumentSetResponse to read, or None when it is one."""
    try:
        body = answer.body
        tag = str(body.tag)
    except Exception:   # no Body, or an empty one: garbage
        return f"{route.url} answered HTTP {answer.status} without a SOAP body"
    if answer.status == 200 and tag == RETRIEVE_RESPONSE:
        return None
    if tag == f"{{{NS_SOAP12}}}Fault":
        text = body.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or ""
        return f"{route.url} answered HTTP {answer.status} with a SOAP fault: {' '.join(text.split())[:300]}"
    return f"{route.url} answered HTTP {answer.status} with {tag.rpartition('}')[2][:80]}, not a retrieve response"


def _passed_on(error: XdsError, route: Route) -> XdsError:
    return XdsError(f"repository {route.repository_unique_id}: {error.message}", error.location, error.code,
                    error.severity)


@dataclass(frozen=True)
class _Group:
    """What is sent to one far repository: the request body, and what each document is for the audit."""

    route: Route
    path: str
    action: str
    body: Callable[[], Any]
    requests: tuple[DocumentRequest, ...]
    studies: Mapping[str, str]            # RAD-69: SOP Instance UID → Study Instance UID


class Forwarder:
    """Sends DocumentRequests for the mapped repositories there and reads the answers into RetrieveResults.

    HubClients (a TLS connection pool and a cached token each) are kept per
    repository and reused, one request at a time each.
    """

    def __init__(self, routes: Mapping[str, Route], home_community_id: str,
                 connect: Callable[[Route], Transport] = _hub_client,
                 communities: Mapping[str, Route] | None = None) -> None:
        self.routes = dict(routes)
        self.communities = dict(communities or {})
        self.home_community_id = home_community_id
        self._connect = connect
        self._pool: ClientPool[Transport] = ClientPool()

    def with_communities(self, communities: Mapping[str, Route]) -> Forwarder:
        """This forwarder, also sending DocumentRequests whose HomeCommunityId is one of `communities` to that
        community's responding gateway (XCA initiating gateway); idle connections are shared."""
        both = Forwarder(self.routes, self.home_community_id, self._connect, communities)
        both._pool = self._pool
        return both

    def route_for(self, request: DocumentRequest) -> Route | None:
        """Where a DocumentRequest is answered: another community, another repository of the domain, or here."""
        home = request.home_community_id
        if home and home != self.home_community_id and home in self.communities:
            return self.communities[home]
        return self.routes.get(request.repository_unique_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Forwarder:
        return cls(repository_routes(settings), settings.home_community_id)

    def _routed_to(self, key: str, request: DocumentRequest) -> bool:
        route = self.route_for(request)
        return route is not None and route.key == key

    def handles(self, request: DocumentRequest) -> bool:
        return self.route_for(request) is not None

    def close(self) -> None:
        self._pool.close()

    # -- ITI-43 --

    def retrieve(self, requests: Sequence[DocumentRequest]) -> RetrieveResult:
        """ITI-43 for DocumentRequests of mapped repositories: one request per repository, answers merged."""
        groups = []
        for route, mine in self._grouped(requests):
            if route.community:     # ITI-39 keeps the HomeCommunityId
                groups.append(_Group(route, XCA_RETRIEVE_PATH, ACTION_CROSS_GATEWAY_RETRIEVE,
                                     partial(render_retrieve_request, tuple(mine)), tuple(mine), {}))
                continue
            outgoing = tuple(DocumentRequest(r.repository_unique_id, r.document_unique_id) for r in mine)
            groups.append(_Group(route, RETRIEVE_PATH, ACTION_RETRIEVE,
                                 partial(render_retrieve_request, outgoing), tuple(mine), {}))
        return self._run(groups)

    # -- RAD-69 --

    def split_imaging(self, request: ImagingRequest) -> tuple[ImagingRequest | None, ImagingRequest | None]:
        """The part of a RAD-69 request answered here (any repository not mapped), and the part forwarded."""
        return (select_documents(request, lambda d: not self.handles(d)), select_documents(request, self.handles))

    def retrieve_imaging(self, request: ImagingRequest) -> RetrieveResult:
        """RAD-69 for the instances of mapped repositories: the same studies and series, one per repository."""
        routes = {route.key: route for d in request.documents
                  if (route := self.route_for(d)) is not None}
        groups = []
        for key in sorted(routes):
            route = routes[key]
            mine = select_documents(request, partial(self._routed_to, key))
            if mine is None:
                continue
            studies = {d.document_unique_id: s.study_instance_uid for s in mine.studies for se in s.series
                       for d in se.documents}
            documents = tuple(mine.documents)
            if route.community:     # RAD-75 keeps the HomeCommunityId
                groups.append(_Group(route, XCA_RETRIEVE_PATH, ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
                                     partial(render_imaging_request, mine), documents, studies))
            else:
                groups.append(_Group(route, IMAGING_PATH, ACTION_RETRIEVE_IMAGING,
                                     partial(render_imaging_request, _without_home(mine)), documents, studies))
        return self._run(groups)

    # -- both --

    def _grouped(self, requests: Sequence[DocumentRequest]) -> list[tuple[Route, list[DocumentRequest]]]:
        groups: dict[str, tuple[Route, list[DocumentRequest]]] = {}
        for request in requests:
            route = self.route_for(request)
            if route is not None:
                groups.setdefault(route.key, (route, []))[1].append(request)
        return list(groups.values())

    def _run(self, groups: Sequence[_Group]) -> RetrieveResult:
        if len(groups) <= 1:
            results = [self._forward(group) for group in groups]
        else:
            with ThreadPoolExecutor(max_workers=min(len(groups), MAX_PARALLEL),
                                    thread_name_prefix="xds-forward") as pool:
                results = list(pool.map(self._forward, groups))
        merged = RetrieveResult()
        for result in results:
            merged.documents.extend(result.documents)
            merged.errors.extend(result.errors)
        return merged

    def _forward(self, group: _Group) -> RetrieveResult:
        route = group.route
        uids = [r.document_unique_id for r in group.requests]
        try:
            with self._pool.client(route.key, partial(self._connect, route)) as client:
                answer = client.mtom(group.path, group.action, group.body(), scope=SCOPE)
                trouble = _answer_trouble(answer, route)
                if trouble is not None:
                    answer.close()
                    raise _Refused(trouble)
        except _Refused as refused:
            log.warning("forwarding to repository %s: %s", route.repository_unique_id, refused)
            return _failed(route, uids, str(refused))
        except Exception as exc:   # anything the far side or the network can do wrong; never a 500 here
            log.warning("forwarding to repository %s failed", route.repository_unique_id, exc_info=exc)
            return _failed(route, uids, _reason(exc, route))
        try:
            return self._read(group, answer)
        except Exception as exc:
            answer.close()
            log.warning("forwarding to repository %s: unusable answer", route.repository_unique_id, exc_info=exc)
            return _failed(route, uids, _reason(exc, route))

    def _read(self, group: _Group, answer: Answer) -> RetrieveResult:
        """The far repository's RetrieveDocumentSetResponse as a RetrieveResult for the documents asked for."""
        route = group.route
        parsed = parse_retrieve_response(answer.body)
        asked = {r.document_unique_id: r for r in group.requests}
        result = RetrieveResult()
        used: set[str] = set()          # Content-IDs passed on
        seen: set[str] = set()          # documents answered
        for document in parsed.documents:
            request = asked.get(document.document_unique_id)
            if request is None or document.document_unique_id in seen:
                continue   # not asked for (or twice): not passed on
            uid = request.document_unique_id
            seen.add(uid)
            if not _MEDIA_TYPE.fullmatch(document.mime_type):
                result.errors.append(RepositoryError(
                    f"repository {route.repository_unique_id} answered document {uid} with an unusable mimeType "
                    f"{document.mime_type[:80]!r}", uid))
                continue
            home = route.community or (self.home_community_id if request.home_community_id else None)
            study = group.studies.get(uid)
            if document.content_id is not None:
                attachment = answer.attachments.get(document.content_id)
                if attachment is None:
                    result.errors.append(RepositoryError(
                        f"repository {route.repository_unique_id} answered document {uid} without its content "
                        f"(no MIME part <{document.content_id[:80]}>)", uid))
                    continue
                used.add(document.content_id)
                result.documents.append(RetrievedDocument(
                    request.repository_unique_id, uid, document.mime_type, attachment.size, attachment.open, home,
                    attachment.file.close, study, None, None))
            else:
                content = BytesContent(document.inline or b"")
                result.documents.append(RetrievedDocument(
                    request.repository_unique_id, uid, document.mime_type, content.size, content.open, home,
                    None, study, None, None))
        for content_id, attachment in answer.attachments.items():
            if content_id not in used:
                attachment.file.close()
        errors = [_passed_on(error, route) for error in parsed.errors]
        answered = {d.document_unique_id for d in result.documents} | {e.location for e in result.errors} \
            | {e.location for e in errors}
        if not any(not e.location for e in errors):   # an error naming no document may be about any of them
            errors += [RepositoryError(f"repository {route.repository_unique_id} answered nothing for document "
                                       f"{uid}", uid) for uid in asked if uid not in answered]
        result.errors.extend(errors)
        return result


def community_routes(session: Session, settings: Settings) -> dict[str, Route]:
    """The peer communities (`xdshub peer add`) as routes to their responding gateways, by homeCommunityId."""
    from hub.federation.peers import list_peers

    return {peer.home_community_id: Route(peer.home_community_id, peer.base_url, peer.bundle,
                                          float(settings.peer_timeout_seconds),
                                          community=peer.home_community_id)
            for peer in list_peers(session, settings)}


def merge_results(requests: Sequence[DocumentRequest], here: RetrieveResult,
                  forwarded: RetrieveResult) -> RetrieveResult:
    """The documents answered here and those forwarded, in the order of `requests`; the errors of both."""
    order = {(r.repository_unique_id, r.document_unique_id): n for n, r in enumerate(requests)}
    documents = sorted([*here.documents, *forwarded.documents],
                       key=lambda d: order.get((d.repository_unique_id, d.document_unique_id), len(order)))
    return RetrieveResult(documents, [*here.errors, *forwarded.errors])


class _Refused(Exception):
    """The far hub answered, but not with a retrieve response."""


def select_documents(request: ImagingRequest, keep: Callable[[DocumentRequest], bool]) -> ImagingRequest | None:
    """The studies and series of `request` holding the documents `keep` accepts; None when none does."""
    studies = []
    for study in request.studies:
        series = []
        for one in study.series:
            documents = tuple(d for d in one.documents if keep(d))
            if documents:
                series.append(SeriesRequest(one.series_instance_uid, documents))
        if series:
            studies.append(StudyRequest(study.study_instance_uid, tuple(series)))
    return ImagingRequest(tuple(studies), request.transfer_syntaxes) if studies else None


def _without_home(request: ImagingRequest) -> ImagingRequest:
    """The request as sent on: inside one affinity domain no HomeCommunityId is needed (XCA's business)."""
    return ImagingRequest(tuple(
        StudyRequest(s.study_instance_uid, tuple(
            SeriesRequest(se.series_instance_uid, tuple(DocumentRequest(d.repository_unique_id, d.document_unique_id)
                                                        for d in se.documents))
            for se in s.series))
        for s in request.studies), request.transfer_syntaxes)
