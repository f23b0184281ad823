"""The XCA initiating gateway for queries: a local consumer's ITI-18 also asks every peer (ITI-38).

The peers are asked in parallel, each with the same AdhocQueryRequest, and
all within `peer_timeout_seconds`: a peer that has not answered by then, or
that cannot be reached, presents a certificate its bundle's CA did not sign,
or answers something that is not an AdhocQueryResponse, is reported as
`XDSUnavailableCommunity` (location: its homeCommunityId) while the others'
objects are still returned, with status PartialSuccess. Objects are
de-duplicated by id; every object carries the `home` of the community it
came from, this hub's own included, so that a consumer's retrieve can be
routed there. The hub asks with its own client certificate at each peer
and a token from the peer's token endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from lxml import etree
from sqlalchemy.orm import Session

from hub.audit.events import Party, stored_query
from hub.audit.message import Outcome
from hub.audit.web import hub_party, source_id, write_event
from hub.client import ClientPool, HubClient
from hub.errors import SoapFault, XdsError
from hub.federation.patients import to_domain
from hub.federation.peers import PeerTarget
from hub.federation.xca import ACTION_CROSS_GATEWAY_QUERY, QUERY_PATH
from registry.ebrim import names as n
from registry.ebrim.render import render_adhoc_query_request, render_registry_error
from registry.model import StoredQuery
from registry.vocabulary import ErrorCode, ResponseStatus, Severity

__all__ = ["PeerAnswer", "ask_peers", "merge_answers", "outgoing_query", "record_peer_queries"]

log = logging.getLogger(__name__)

STAMPED = (n.EXTRINSIC_OBJECT, n.REGISTRY_PACKAGE, n.OBJECT_REF)


@dataclass(frozen=True)
class PeerAnswer:
    peer: PeerTarget
    response: etree._Element | None      # the peer's AdhocQueryResponse
    failure: str | None = None           # why the peer counts as unavailable


PATIENT_PARAMETERS = ("$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId", "$XDSFolderPatientId", "$patientId")


def outgoing_query(session: Session, query: StoredQuery, organisation_id: int) -> etree._Element:
    """The AdhocQueryRequest the peers get: the consumer's, its local patient ids as the affinity domain's."""
    def domain(value: str) -> str:
        bare = value.strip()
        quoted = bare.startswith("'") and bare.endswith("'")
        translated = to_domain(session, organisation_id, bare[1:-1] if quoted else bare)
        return f"'{translated}'" if quoted else translated
    parameters = {name: [[domain(v) for v in values] if name in PATIENT_PARAMETERS else values
                         for values in occurrences] for name, occurrences in query.parameters.items()}
    return render_adhoc_query_request(replace(query, parameters=parameters))


def _unreachable(peer: PeerTarget, reason: str) -> PeerAnswer:
    log.warning("peer %s (%s) unavailable: %s", peer.name, peer.home_community_id, reason)
    return PeerAnswer(peer, None, reason)


_POOL: ClientPool[HubClient] = ClientPool()     # the peers' clients, kept between queries


class _NotAnAnswer(Exception):
    """The peer answered, but not with an AdhocQueryResponse (a refused token, a fault)."""


def _ask(peer: PeerTarget, request: etree._Element, timeout: float) -> PeerAnswer:
    try:
        with _POOL.client(peer, lambda: HubClient(peer.bundle, base_url=peer.base_url, timeout=timeout)) as client:
            client.timeout = timeout
            answer = client.soap(QUERY_PATH, ACTION_CROSS_GATEWAY_QUERY, request, scope="xds:query")
            body = answer.body
            if body.tag != n.ADHOC_QUERY_RESPONSE:      # the client is not kept: the next query starts afresh
                raise _NotAnAnswer(f"answered {etree.QName(body).localname} (HTTP {answer.status}), "
                                   "not an AdhocQueryResponse")
    except _NotAnAnswer as exc:
        return _unreachable(peer, str(exc))
    except SoapFault as exc:   # what parsing the answer found wrong with it
        return _unreachable(peer, f"its answer is not a SOAP message: {str(exc)[:300]}")
    except Exception as exc:   # anything else a peer can do wrong: network, TLS, HTTP
        return _unreachable(peer, f"{type(exc).__name__}: {str(exc)[:300]}")
    return PeerAnswer(peer, body)


def ask_peers(peers: Sequence[PeerTarget], request: etree._Element, timeout: float) -> list[PeerAnswer]:
    """Every peer's answer to `request`, asked in parallel; none waited for longer than `timeout` seconds."""
    if not peers:
        return []
    executor = ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="xca-query")
    try:
        # Each HTTP call may take a little longer than the whole fan-out: the deadline below decides, once.
        futures: dict[Future[PeerAnswer], PeerTarget] = {
            executor.submit(_ask, peer, request, timeout + 1): peer for peer in peers}
        done, _ = wait(futures, timeout=timeout)
        return [future.result() if future in done else
                PeerAnswer(peer, None, f"no answer within {timeout:g} s") for future, peer in futures.items()]
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _objects(response: etree._Element) -> list[etree._Element]:
    object_list = response.find(n.REGISTRY_OBJECT_LIST)
    return [] if object_list is None else [child for child in object_list if isinstance(child.tag, str)]


def _unavailable(answer: PeerAnswer) -> XdsError:
    return XdsError(f"community {answer.peer.home_community_id} ({answer.peer.name}) is unavailable: "
                    f"{answer.failure}", answer.peer.home_community_id, ErrorCode.UNAVAILABLE_COMMUNITY,
                    Severity.ERROR)


def record_peer_queries(session: Session, answers: Sequence[PeerAnswer], query_id: str, query_xml: bytes,
                        patient_id: str | None) -> None:
    """The initiating gateway's half of each Cross Gateway Query (ITI TF-2b 3.38.5.1.1): an ITI-38 Query
    record per peer, the hub the Source and the peer's gateway the Destination, failed when it was
    unavailable. Added to the request's transaction (the caller commits)."""
    now = datetime.now(UTC)
    for answer in answers:
        peer = Party(user_id=f"{answer.peer.base_url}{QUERY_PATH}", address=urlsplit(answer.peer.base_url).hostname,
                     name=answer.peer.name)
        write_event(session, stored_query(
            requestor=hub_party(), hub=peer, time=now, source_id=source_id(), query_id=query_id, query_xml=query_xml,
            outcome=Outcome.SUCCESS if answer.response is not None else Outcome.SERIOUS_FAILURE,
            patient_id=patient_id, home_community_id=answer.peer.home_community_id, description=answer.failure,
            transaction="ITI-38"))


def merge_answers(local: etree._Element, home: str, answers: Sequence[PeerAnswer]) -> etree._Element:
    """The local AdhocQueryResponse with the peers' objects and errors added (in place; also returned)."""
    local_ok = local.get("status") != ResponseStatus.FAILURE.value
    object_list = local.find(n.REGISTRY_OBJECT_LIST)
    if object_list is None:
        object_list = etree.SubElement(local, n.REGISTRY_OBJECT_LIST)
    seen = set()
    for element in _objects(local):
        if element.tag in STAMPED and not element.get("home"):
            element.set("home", home)
        seen.add(element.get("id"))
    errors: list[etree._Element] = []
    peers_ok = False
    for answer in answers:
        if answer.response is None:
            errors.append(render_registry_error(_unavailable(answer)))
            continue
        status = answer.response.get("status", "")
        peers_ok = peers_ok or status != ResponseStatus.FAILURE.value
        remote_errors = answer.response.find(n.REGISTRY_ERROR_LIST)
        if remote_errors is not None:
            errors.extend(e for e in remote_errors if isinstance(e.tag, str))
        for element in _objects(answer.response):
            if element.tag in STAMPED and not element.get("home"):
                element.set("home", answer.peer.home_community_id)
            if element.get("id") not in seen:
                seen.add(element.get("id"))
                object_list.append(element)
    if errors:
        error_list = local.find(n.REGISTRY_ERROR_LIST)
        if error_list is None:
            error_list = etree.Element(n.REGISTRY_ERROR_LIST)
            object_list.addprevious(error_list)
        error_list.extend(errors)
        severities = {e.get("severity", "") for e in error_list}
        error_list.set("highestSeverity", Severity.ERROR.value if Severity.ERROR.value in severities
                       else Severity.WARNING.value)
        any_ok = local_ok or peers_ok
        local.set("status", (ResponseStatus.PARTIAL_SUCCESS if any_ok else ResponseStatus.FAILURE).value)
    return local
