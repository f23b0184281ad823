"""How the repository registers what it stored: in-process, or by ITI-42 with another registry.

ITI TF-2b 3.41.4.1.3: after storing the documents the Document Repository
sends Register Document Set-b to the registry it is configured with.

- `LocalRegistry`: this hub is also the registry; the submission is
  registered in the caller's database transaction, so documents and
  registry entries commit together.
- `RemoteRegistry`: `registry_url` in hub.toml names another registry; the
  hub calls it over mutual TLS with a certificate-bound OAuth2 token, using
  the client bundle that `xdshub org add` wrote at that registry
  (`registry_bundle`). Its RegistryErrors are passed on to the Document
  Source with their codes; an unreachable registry is XDSRepositoryError.
"""

from __future__ import annotations

from typing import Protocol

import requests
from lxml import etree
from sqlalchemy.orm import Session

from hub.errors import RepositoryError, SoapFault, XdsError, XdsErrorList
from hub.security.identity import Caller
from hub.settings import Settings
from registry.ebrim import render_submit_objects_request
from registry.ebrim.names import REGISTRY_ERROR, REGISTRY_RESPONSE
from registry.model import SubmitObjectsRequest
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import ACTION_REGISTER, ErrorCode, ResponseStatus


class Registry(Protocol):
    in_process: bool

    def register(self, session: Session, submission: SubmitObjectsRequest, caller: Caller) -> None: ...


class LocalRegistry:
    in_process = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def register(self, session: Session, submission: SubmitObjectsRequest, caller: Caller) -> None:
        register_document_set(session, submission, caller, self.settings)


def _remote_errors(response: etree._Element) -> list[XdsError]:
    errors = []
    for element in response.iter(REGISTRY_ERROR):
        code_text = element.get("errorCode", "")
        try:
            code = ErrorCode(code_text)
        except ValueError:
            code = ErrorCode.REGISTRY_ERROR
        message = element.get("codeContext") or (element.text or "").strip() or code_text
        errors.append(XdsError(f"registry answered: {message}", element.get("location", ""), code))
    return errors or [XdsError("registry answered Failure without errors", "", ErrorCode.REGISTRY_ERROR)]


class RemoteRegistry:
    """ITI-42 to another registry (the hub as Document Repository acting as a Document Source)."""

    in_process = False

    def __init__(self, settings: Settings, timeout: float = 60.0) -> None:
        from hub.client import HubClient

        self.url = settings.registry_url
        self.client = HubClient(settings.path(settings.registry_bundle), timeout=timeout)

    def register(self, session: Session, submission: SubmitObjectsRequest, caller: Caller) -> None:
        try:
            answer = self.client.soap_url(self.url, ACTION_REGISTER, render_submit_objects_request(submission),
                                          scope="xds:register")
        except (requests.RequestException, SoapFault, OSError) as exc:
            raise RepositoryError(f"the registry at {self.url} could not be reached: {type(exc).__name__}") from None
        if answer.status != 200 or answer.body.tag != REGISTRY_RESPONSE:
            raise RepositoryError(f"the registry at {self.url} answered HTTP {answer.status} "
                                  f"with {etree.QName(answer.body).localname}")
        if answer.body.get("status") != ResponseStatus.SUCCESS.value:
            raise XdsErrorList(_remote_errors(answer.body))


def registry_for(settings: Settings) -> Registry:
    return RemoteRegistry(settings) if settings.registry_url else LocalRegistry(settings)
