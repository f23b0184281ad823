"""One builder per audit event of the hub, with the participants and objects IHE prescribes.

Every builder takes plain values (no Flask, no lxml) and returns an
`AuditEvent` (DICOM PS3.15 A.5.1) recorded by the hub in its server-side role:

    builder           transaction, hub's actor                  EventID            action  objects
    stored_query      ITI-18, Document Registry                 110112 Query       E       patient?, query
    register          ITI-42, Document Registry                 110107 Import      C       patient?, submission set?
    provide           ITI-41 / RAD-68, Document Repository      110107 Import      C       patient?, submission set?
    retrieve          ITI-43, Document Repository               110106 Export      R       patient?, document*
    retrieve_imaging  RAD-69, Imaging Document Source           110106 Export      R       patient?, study*
    (the same three)  ITI-38, ITI-39, RAD-75, Responding Gateway  as stored_query, retrieve, retrieve_imaging
    token_issued      token endpoint (OAuth 2.0 client creds.)  110114 User Auth.  E       client
    security_alert    a call refused before a transaction ran   110113 Sec. Alert  E       alert subject

Active participants: the requestor is the Source (UserIsRequestor true, role
110153 "Source Role ID"), the hub the Destination (role 110152 "Destination
Role ID"); on exports (ITI-43, RAD-69) the hub sends, so it is the Source and
the requestor the Destination, still UserIsRequestor. The patient is object type 1 (person), role 1 (patient), ID type
RFC-3881 "2"; a submission set is type 2, role 20 (job), ID type its
classification node (ITI TF-2 3.41 and 3.42 audit record considerations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from hub.audit import codes
from hub.audit.codes import CodedValue, ObjectRole, ObjectType
from hub.audit.message import Action, ActiveParticipant, AuditEvent, Outcome, ParticipantObject

QUERY_ENCODING = "UTF-8"   # the encoding of the AdhocQueryRequest bytes the hub records (ITI TF-2 3.18 audit)


@dataclass(frozen=True)
class Party:
    """Who is on one side of a transaction.

    For a calling organisation `user_id` is its OID, `name` its name and
    `alternative_id` its OAuth client id; for the hub `user_id` is the URL of
    the endpoint called. `address` is an IP address or a host name.
    """

    user_id: str
    address: str | None = None
    name: str | None = None
    alternative_id: str | None = None


def _source(party: Party) -> ActiveParticipant:
    return ActiveParticipant(user_id=party.user_id, requestor=True, role=codes.SOURCE_ROLE,
                             alternative_user_id=party.alternative_id, user_name=party.name,
                             network_access_point=party.address)


def _destination(party: Party) -> ActiveParticipant:
    return ActiveParticipant(user_id=party.user_id, requestor=False, role=codes.DESTINATION_ROLE,
                             alternative_user_id=party.alternative_id, user_name=party.name,
                             network_access_point=party.address)


def _patient(patient_id: str | None) -> tuple[ParticipantObject, ...]:
    if not patient_id:
        return ()
    return (ParticipantObject(patient_id, ObjectType.PERSON, ObjectRole.PATIENT, codes.PATIENT_NUMBER),)


def _submission_set(uid: str | None) -> tuple[ParticipantObject, ...]:
    if not uid:
        return ()
    return (ParticipantObject(uid, ObjectType.SYSTEM_OBJECT, ObjectRole.JOB, codes.SUBMISSION_SET),)


def _event(event_id: CodedValue, action: Action, type_code: CodedValue | None, *, requestor: Party, hub: Party,
           outcome: Outcome, time: datetime, source_id: str, objects: tuple[ParticipantObject, ...],
           description: str | None, exporting: bool = False) -> AuditEvent:
    """`exporting`: the hub sends data to the requestor (ITI-43, RAD-69), so the hub is the Source and the
    requestor the Destination (ITI TF-2 3.43.5.1.2), the requestor still UserIsRequestor."""
    if exporting:
        participants = (replace(_destination(hub), role=codes.SOURCE_ROLE),
                        replace(_source(requestor), role=codes.DESTINATION_ROLE))
    else:
        participants = (_source(requestor), _destination(hub))
    return AuditEvent(event_id=event_id, action=action, outcome=Outcome(outcome), time=time,
                      type_codes=(type_code,) if type_code is not None else (),
                      participants=participants, source_id=source_id, objects=objects,
                      outcome_description=description)


QUERY_TRANSACTIONS = ("ITI-18", "ITI-38")
RETRIEVE_TRANSACTIONS = ("ITI-43", "ITI-39")
RETRIEVE_IMAGING_TRANSACTIONS = ("RAD-69", "RAD-75")


def stored_query(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, query_id: str,
                 query_xml: bytes, patient_id: str | None, home_community_id: str | None,
                 description: str | None = None, transaction: str = "ITI-18") -> AuditEvent:
    """ITI-18 Registry Stored Query, Document Registry audit message (ITI TF-2 3.18, Security Considerations).

    The query object: type 2, role 24 (query), ID type the ITI-18 code, ID the
    stored query UUID, ParticipantObjectQuery the AdhocQueryRequest, details
    QueryEncoding and, when the request named one, ihe:homeCommunityID.
    `transaction` "ITI-38": the Responding Gateway's Cross Gateway Query, audited
    the same way with its own code (ITI TF-2b 3.38.5.1.2).
    """
    if transaction not in QUERY_TRANSACTIONS:
        raise ValueError(f"stored_query audits {' or '.join(QUERY_TRANSACTIONS)}, not {transaction!r}")
    details: tuple[tuple[str, bytes], ...] = ((codes.QUERY_ENCODING, QUERY_ENCODING.encode()),)
    if home_community_id:
        details += ((codes.HOME_COMMUNITY_ID, home_community_id.encode()),)
    query = ParticipantObject(query_id, ObjectType.SYSTEM_OBJECT, ObjectRole.QUERY, codes.transaction(transaction),
                              query=query_xml, details=details)
    return _event(codes.QUERY, Action.EXECUTE, codes.transaction(transaction), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id, objects=_patient(patient_id) + (query,),
                  description=description)


def register(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
             submission_set_uid: str | None, patient_id: str | None, description: str | None = None) -> AuditEvent:
    """ITI-42 Register Document Set-b, Document Registry audit message (ITI TF-2 3.42, Security Considerations)."""
    return _event(codes.IMPORT, Action.CREATE, codes.transaction("ITI-42"), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id,
                  objects=_patient(patient_id) + _submission_set(submission_set_uid), description=description)


PROVIDE_TRANSACTIONS = ("ITI-41", "RAD-68")


def provide(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
            submission_set_uid: str | None, patient_id: str | None, transaction: str = "ITI-41",
            description: str | None = None) -> AuditEvent:
    """ITI-41 Provide and Register Document Set-b, or RAD-68 for imaging, Document Repository audit message.

    ITI TF-2 3.41 Security Considerations; RAD TF-3 4.68 audits RAD-68 the same
    way with its own event type code.
    """
    if transaction not in PROVIDE_TRANSACTIONS:
        raise ValueError(f"provide audits {' or '.join(PROVIDE_TRANSACTIONS)}, not {transaction!r}")
    return _event(codes.IMPORT, Action.CREATE, codes.transaction(transaction), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id,
                  objects=_patient(patient_id) + _submission_set(submission_set_uid), description=description)


def retrieve(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
             documents: Sequence[tuple[str, str, str | None]], patient_id: str | None,
             description: str | None = None, transaction: str = "ITI-43") -> AuditEvent:
    """ITI-43 Retrieve Document Set, Document Repository audit message (ITI TF-2 3.43, Security Considerations).

    `documents` are (document unique id, repository unique id, home community
    id or None); each is an object of type 2, role 3 (report), ID type
    RFC-3881 "9", with the details "Repository Unique Id" and ihe:homeCommunityID.
    `transaction` "ITI-39": the Responding Gateway's Cross Gateway Retrieve, audited
    the same way with its own code (ITI TF-2b 3.39.5.1.2).
    """
    if transaction not in RETRIEVE_TRANSACTIONS:
        raise ValueError(f"retrieve audits {' or '.join(RETRIEVE_TRANSACTIONS)}, not {transaction!r}")
    objects = _patient(patient_id)
    for document_uid, repository_uid, home_community_id in documents:
        details: tuple[tuple[str, bytes], ...] = ((codes.REPOSITORY_UNIQUE_ID, repository_uid.encode()),)
        if home_community_id:
            details += ((codes.HOME_COMMUNITY_ID, home_community_id.encode()),)
        objects += (ParticipantObject(document_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.REPORT_NUMBER,
                                      details=details),)
    return _event(codes.EXPORT, Action.READ, codes.transaction(transaction), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id, objects=objects, description=description,
                  exporting=True)


def _by_sop_class(instances: Sequence[tuple[str, str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    grouped: dict[str, list[str]] = {}
    for sop_class, sop_instance in instances:
        grouped.setdefault(sop_class, []).append(sop_instance)
    return tuple((sop_class, tuple(uids)) for sop_class, uids in grouped.items())


def retrieve_imaging(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
                     studies: Sequence[tuple[str, Sequence[tuple[str, str]]]], patient_id: str | None,
                     description: str | None = None, transaction: str = "RAD-69") -> AuditEvent:
    """RAD-69 Retrieve Imaging Document Set, Imaging Document Source audit message (RAD TF-3 4.69).

    `studies` are (Study Instance UID, [(SOP Class UID, SOP Instance UID), ...]);
    each study is an object of type 2, role 3, ID type DCM 110180, whose
    ParticipantObjectDescription lists the instances sent by SOP class.
    `transaction` "RAD-75": the Responding Imaging Gateway's Cross Gateway Retrieve
    Imaging Document Set, audited the same way with its own code (RAD TF-3 4.75).
    """
    if transaction not in RETRIEVE_IMAGING_TRANSACTIONS:
        raise ValueError(f"retrieve_imaging audits {' or '.join(RETRIEVE_IMAGING_TRANSACTIONS)}, "
                         f"not {transaction!r}")
    objects = _patient(patient_id) + tuple(
        ParticipantObject(study_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.STUDY_INSTANCE_UID,
                          sop_classes=_by_sop_class(instances))
        for study_uid, instances in studies)
    return _event(codes.EXPORT, Action.READ, codes.transaction(transaction), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id, objects=objects, description=description,
                  exporting=True)


def token_issued(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, client_id: str,
                 scopes: str, description: str | None = None) -> AuditEvent:
    """A token request, granted or refused: User Authentication, type Login (PS3.15 A.5.3 "User Authentication").

    The OAuth client is the authenticated participant (its client id as
    AlternativeUserID) and the object: type 2, role 11 (security user entity),
    ID type RFC-3881 "11", with the requested scopes as a "scope" detail.
    """
    source = _source(requestor)
    if not source.alternative_user_id:
        source = replace(source, alternative_user_id=client_id)
    details = ((codes.OAUTH_SCOPE, scopes.encode()),) if scopes else ()
    client = ParticipantObject(client_id, ObjectType.SYSTEM_OBJECT, ObjectRole.SECURITY_USER_ENTITY,
                               codes.USER_IDENTIFIER, details=details)
    return AuditEvent(event_id=codes.USER_AUTHENTICATION, action=Action.EXECUTE, outcome=Outcome(outcome), time=time,
                      type_codes=(codes.LOGIN,), participants=(source, _destination(hub)), source_id=source_id,
                      objects=(client,), outcome_description=description)


def alert_type(reason: str) -> CodedValue:
    """The PS3.16 CID 403 Security Alert type of a refusal, from its reason.

    A missing or unregistered client certificate is a failed node
    authentication (110126 "Node Authentication"). Every other refusal (no,
    invalid, expired or foreign token, token bound to another certificate,
    scope not granted) is an attempt to use a function the caller has no
    right to (110132 "Use of Restricted Function"); CID 403 has no closer code.
    """
    if "client certificate" in reason.lower():
        return codes.NODE_AUTHENTICATION
    return codes.USE_OF_RESTRICTED_FUNCTION


def security_alert(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, reason: str,
                   transaction: str | None, path: str, kind: CodedValue | None = None) -> AuditEvent:
    """A call refused before any transaction ran: Security Alert (PS3.15 A.5.3 "Security Alert").

    EventTypeCode is `kind`, else `alert_type(reason)`. The alert subject is the
    endpoint called (type 2, ID type RFC-3881 "12" URI) with the reason as its
    "Alert Description" and the transaction attempted, when known, as an
    "IHE Transaction" detail; the reason is the EventOutcomeDescription too.
    """
    details: tuple[tuple[str, bytes], ...] = ((codes.ALERT_DESCRIPTION, reason.encode("utf-8", "replace")),)
    if transaction:
        details += ((codes.IHE_TRANSACTION, transaction.encode("utf-8", "replace")),)
    subject = ParticipantObject(path, ObjectType.SYSTEM_OBJECT, None, codes.URI, details=details)
    return _event(codes.SECURITY_ALERT, Action.EXECUTE, kind or alert_type(reason), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id, objects=(subject,), description=reason)


# -- administrative commands (the xdshub command line) ----------------------------------------------------------

def operator() -> Party:
    """The person at the command line: the operating-system account on this host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    host = socket.gethostname()
    return Party(user_id=f"{user}@{host}", address=host, name=user)


def organisation_registered(*, hub: Party, outcome: Outcome, time: datetime, source_id: str, organisation_oid: str,
                            organisation_name: str, scopes: str) -> AuditEvent:
    """`xdshub org add`: a node given credentials and rights (Security Alert, type 110137, PS3.16 CID 403)."""
    organisation = ParticipantObject(organisation_oid, ObjectType.ORGANIZATION, ObjectRole.SECURITY_USER_ENTITY,
                                     codes.USER_IDENTIFIER, name=organisation_name,
                                     details=((codes.OAUTH_SCOPE, scopes.encode()),))
    return AuditEvent(event_id=codes.SECURITY_ALERT, action=Action.EXECUTE, outcome=Outcome(outcome), time=time,
                      type_codes=(codes.USER_SECURITY_ATTRIBUTES_CHANGED,),
                      participants=(_source(operator()), _destination(hub)), source_id=source_id,
                      objects=(organisation,))


def instances_imported(*, sender: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
                       studies: Sequence[tuple[str, Sequence[tuple[str, str]]]], patient_id: str | None,
                       description: str | None = None) -> AuditEvent:
    """DICOM instances taken in for a sending organisation (Import 110107, PS3.15 A.5.3.7), by study."""
    objects = _patient(patient_id) + tuple(
        ParticipantObject(study_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.STUDY_INSTANCE_UID,
                          sop_classes=_by_sop_class(instances))
        for study_uid, instances in studies)
    return AuditEvent(event_id=codes.IMPORT, action=Action.CREATE, outcome=Outcome(outcome), time=time,
                      type_codes=(codes.IMPORT,), participants=(_source(sender), _destination(hub)),
                      source_id=source_id, objects=objects, outcome_description=description)


def audit_log_used(*, hub: Party, outcome: Outcome, time: datetime, source_id: str, what: str,
                   description: str | None = None, requestor: Party | None = None) -> AuditEvent:
    """The audit trail itself read or moved (Audit Log Used 110101, PS3.15 A.5.3.2): by an organisation
    through the query endpoints (`requestor`), or by an operator at the command line."""
    log_object = ParticipantObject(what, ObjectType.SYSTEM_OBJECT, ObjectRole.SECURITY_RESOURCE, codes.URI)
    return AuditEvent(event_id=codes.AUDIT_LOG_USED, action=Action.READ, outcome=Outcome(outcome), time=time,
                      type_codes=(codes.AUDIT_LOG_USED,),
                      participants=(_source(requestor or operator()), _destination(hub)),
                      source_id=source_id, objects=(log_object,), outcome_description=description)


# -- the compliance console -----------------------------------------------------------------------------------

def console_login(*, user: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, logout: bool = False,
                  description: str | None = None) -> AuditEvent:
    """A console login (granted or refused) or logout: User Authentication 110114, type Login 110122 or
    Logout 110123 (PS3.15 A.5.3 "User Authentication"). The person is the requestor; no participant object."""
    return AuditEvent(event_id=codes.USER_AUTHENTICATION, action=Action.EXECUTE, outcome=Outcome(outcome), time=time,
                      type_codes=(codes.LOGOUT if logout else codes.LOGIN,),
                      participants=(_source(user), _destination(hub)), source_id=source_id,
                      outcome_description=description)


def account_changed(*, by: Party, hub: Party, time: datetime, source_id: str, account: str, role: str,
                    change: str) -> AuditEvent:
    """A console account created, unlocked, given a new password or removed: Security Alert with type
    110136 Security Roles Changed (an account given a role) or 110137 User Security Attributes Changed
    (PS3.16 CID 403). The account is the object: a person in the role of security user entity."""
    kind = codes.SECURITY_ROLES_CHANGED if change in ("created", "removed") else codes.USER_SECURITY_ATTRIBUTES_CHANGED
    subject = ParticipantObject(account, ObjectType.PERSON, ObjectRole.SECURITY_USER_ENTITY, codes.USER_IDENTIFIER,
                                name=account, details=((codes.DESCRIPTION, f"{change}; role {role}".encode()),))
    return AuditEvent(event_id=codes.SECURITY_ALERT, action=Action.EXECUTE, outcome=Outcome.SUCCESS, time=time,
                      type_codes=(kind,), participants=(_source(by), _destination(hub)), source_id=source_id,
                      objects=(subject,), outcome_description=f"console account {account} {change}")


def peer_changed(*, hub: Party, time: datetime, source_id: str, name: str, community: str, base_url: str,
                 change: str) -> AuditEvent:
    """`xdshub peer add|remove`: another community federated with, or no longer (Security Alert, type 110128
    Network Configuration, PS3.16 CID 403). The peer is the object: a system object in the role of security
    resource, its homeCommunityId as the ID and its URL as a description."""
    subject = ParticipantObject(community, ObjectType.SYSTEM_OBJECT, ObjectRole.SECURITY_RESOURCE, codes.URI,
                                name=name, details=((codes.DESCRIPTION, f"{change}; {base_url}".encode()),))
    return AuditEvent(event_id=codes.SECURITY_ALERT, action=Action.EXECUTE, outcome=Outcome.SUCCESS, time=time,
                      type_codes=(codes.NETWORK_CONFIGURATION,),
                      participants=(_source(operator()), _destination(hub)), source_id=source_id,
                      objects=(subject,), outcome_description=f"peer {name} ({community}) {change}")


# -- DIMSE (repository.dimse) ---------------------------------------------------------------------------------

def instances_transferred(*, sender: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
                          action: Action, studies: Sequence[tuple[str, Sequence[tuple[str, str]]]],
                          patient_id: str | None, description: str | None = None) -> AuditEvent:
    """DICOM instances received over DIMSE (C-STORE): 110104, PS3.15 A.5.3 "DICOM Instances Transferred".

    The hub audits as the receiver: the sending process is the Source (role
    110153, UserIsRequestor: it opened the association), the hub the
    Destination (110152). EventActionCode C when the hub did not hold the
    instances before, R when it held them all already. Each study is an object
    of type 2, role 3, ID type DCM 110180 with its SOP classes and instance
    counts (ParticipantObjectDescription); the patient is type 1, role 1.
    """
    objects = _patient(patient_id) + tuple(
        ParticipantObject(study_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.STUDY_INSTANCE_UID,
                          sop_classes=_by_sop_class(instances))
        for study_uid, instances in studies)
    return AuditEvent(event_id=codes.INSTANCES_TRANSFERRED, action=action, outcome=Outcome(outcome), time=time,
                      type_codes=(), participants=(_source(sender), _destination(hub)), source_id=source_id,
                      objects=objects, outcome_description=description)


def application_entity_changed(*, hub: Party, time: datetime, source_id: str, ae_title: str, organisation_oid: str,
                               host: str | None, change: str) -> AuditEvent:
    """`xdshub ae add|remove`: a calling AE title given to, or taken from, an organisation (Security Alert,
    type 110137 User Security Attributes Changed, PS3.16 CID 403). The AE title is the object: a system
    object in the role of security user entity, its organisation and host restriction as a description."""
    where = f"; host {host}" if host else ""
    subject = ParticipantObject(ae_title, ObjectType.SYSTEM_OBJECT, ObjectRole.SECURITY_USER_ENTITY,
                                codes.USER_IDENTIFIER, name=f"AETITLES={ae_title}",
                                details=((codes.DESCRIPTION,
                                          f"{change}; organisation {organisation_oid}{where}".encode()),))
    return AuditEvent(event_id=codes.SECURITY_ALERT, action=Action.EXECUTE, outcome=Outcome.SUCCESS, time=time,
                      type_codes=(codes.USER_SECURITY_ATTRIBUTES_CHANGED,),
                      participants=(_source(operator()), _destination(hub)), source_id=source_id,
                      objects=(subject,), outcome_description=f"calling AE title {ae_title} {change}")


# -- DICOMweb (PS3.18): RAD-108 STOW-RS, RAD-107 WADO-RS, RAD-129 QIDO-RS ----------------------------------------
#
#   builder            transaction, hub's actor              EventID                          action  objects
#   dicomweb_store     RAD-108 Store Instances over the Web  110104 DICOM Instances Transferred C       patient?, study*
#   dicomweb_retrieve  RAD-107 WADO-RS Retrieve              110104 DICOM Instances Transferred R       patient?, study*
#   dicomweb_query     RAD-129 QIDO-RS Query                 110112 Query                       E       query
#
# PS3.15 A.5.3.6 "DICOM Instances Transferred" is the message for instances moved between nodes, the action
# C when the receiver did not hold them before and R when they are read; the sender of the instances is the
# Source (on a retrieve the hub, as for RAD-69). PS3.15 A.5.3.12 "Query" for the search, whose query object
# carries the query parameters as ParticipantObjectQuery (the URL's query string).

def _studies(studies: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> tuple[ParticipantObject, ...]:
    return tuple(ParticipantObject(study_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.STUDY_INSTANCE_UID,
                                   sop_classes=_by_sop_class(instances))
                 for study_uid, instances in studies)


def dicomweb_store(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
                   studies: Sequence[tuple[str, Sequence[tuple[str, str]]]], patient_id: str | None,
                   description: str | None = None) -> AuditEvent:
    """RAD-108 Store Instances over the Web (STOW-RS), the hub receiving: DICOM Instances Transferred, Create."""
    return _event(codes.INSTANCES_TRANSFERRED, Action.CREATE, codes.transaction("RAD-108"), requestor=requestor,
                  hub=hub, outcome=outcome, time=time, source_id=source_id,
                  objects=_patient(patient_id) + _studies(studies), description=description)


def dicomweb_retrieve(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str,
                      studies: Sequence[tuple[str, Sequence[tuple[str, str]]]], patient_id: str | None,
                      description: str | None = None) -> AuditEvent:
    """RAD-107 WADO-RS Retrieve (instances, metadata, frames, bulk data, rendered), the hub sending:
    DICOM Instances Transferred, Read; the hub is the Source, the requestor the Destination."""
    return _event(codes.INSTANCES_TRANSFERRED, Action.READ, codes.transaction("RAD-107"), requestor=requestor,
                  hub=hub, outcome=outcome, time=time, source_id=source_id,
                  objects=_patient(patient_id) + _studies(studies), description=description, exporting=True)


def dicomweb_query(*, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, path: str,
                   query: bytes, description: str | None = None) -> AuditEvent:
    """RAD-129 QIDO-RS Query: Query, Execute. The query object: type 2, role 24 (query), ID type the RAD-129
    code, ID the resource searched (the URL path), ParticipantObjectQuery the query string."""
    query_object = ParticipantObject(path, ObjectType.SYSTEM_OBJECT, ObjectRole.QUERY, codes.transaction("RAD-129"),
                                     query=query, details=((codes.QUERY_ENCODING, QUERY_ENCODING.encode()),))
    return _event(codes.QUERY, Action.EXECUTE, codes.transaction("RAD-129"), requestor=requestor, hub=hub,
                  outcome=outcome, time=time, source_id=source_id, objects=(query_object,), description=description)


# -- share links and the viewer (hub.shares) ------------------------------------------------------------------
#
#   builder        what                                      EventID                         action  objects
#   share_changed  a link made or withdrawn (POST/DELETE)    110113 Security Alert, type     E       patient?, study
#                                                            110135 Object Security Attrs.
#   share_viewed   the viewer opened (a visit starts)        110103 DICOM Instances Accessed R       patient?, study
#   share_exported the study downloaded as a ZIP             110106 Export                   R       patient?, study
#
# The person viewing is the requestor and the Destination (the hub sends), recorded as "share:<link id>" with
# the link's recipient label as UserName; their browser's User-Agent is a detail of the study object. For a
# clinician's launch (IHE IID) the requestor is the clinician.

def _shared_study(study_uid: str, instances: Sequence[tuple[str, str]], user_agent: str | None,
                  description: str | None = None) -> ParticipantObject:
    details: tuple[tuple[str, bytes], ...] = ()
    if user_agent:
        details += ((codes.USER_AGENT, user_agent.encode("utf-8", "replace")[:512]),)
    return ParticipantObject(study_uid, ObjectType.SYSTEM_OBJECT, ObjectRole.REPORT, codes.STUDY_INSTANCE_UID,
                             details=details, description=description, sop_classes=_by_sop_class(instances))


def share_changed(*, by: Party, hub: Party, time: datetime, source_id: str, link_id: str, study_uid: str,
                  patient_id: str | None, change: str) -> AuditEvent:
    """A share link made or withdrawn: Security Alert, type 110135 Object Security Attributes Changed
    (PS3.16 CID 403): who may see the study changed. The study is the object, the change its description."""
    study = _shared_study(study_uid, (), None, f"share link {link_id} {change}")
    return AuditEvent(event_id=codes.SECURITY_ALERT, action=Action.EXECUTE, outcome=Outcome.SUCCESS, time=time,
                      type_codes=(codes.OBJECT_SECURITY_ATTRIBUTES_CHANGED,),
                      participants=(_source(by), _destination(hub)), source_id=source_id,
                      objects=_patient(patient_id) + (study,), outcome_description=f"share link {link_id} {change}")


def share_viewed(*, viewer: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, study_uid: str,
                 instances: Sequence[tuple[str, str]], patient_id: str | None, user_agent: str | None,
                 description: str | None = None) -> AuditEvent:
    """The viewer opened on a study: DICOM Instances Accessed (PS3.15 A.5.3.5), Read; the hub shows, so it is
    the Source and the viewer the Destination."""
    study = _shared_study(study_uid, instances, user_agent)
    return _event(codes.INSTANCES_ACCESSED, Action.READ, None, requestor=viewer, hub=hub, outcome=outcome, time=time,
                  source_id=source_id, objects=_patient(patient_id) + (study,), description=description,
                  exporting=True)


def share_exported(*, viewer: Party, hub: Party, outcome: Outcome, time: datetime, source_id: str, study_uid: str,
                   instances: Sequence[tuple[str, str]], patient_id: str | None, user_agent: str | None,
                   description: str | None = None) -> AuditEvent:
    """The study downloaded (a ZIP with a DICOMDIR): Export (PS3.15 A.5.3.7), Read; the viewer the Destination."""
    study = _shared_study(study_uid, instances, user_agent)
    return _event(codes.EXPORT, Action.READ, None, requestor=viewer, hub=hub, outcome=outcome, time=time,
                  source_id=source_id, objects=_patient(patient_id) + (study,), description=description,
                  exporting=True)


# -- patient identity (hub.federation.patients) ---------------------------------------------------------------

def patient_linked(*, by: Party, hub: Party, time: datetime, source_id: str, organisation_oid: str, local_id: str,
                   domain_id: str, rehomed: int = 0) -> AuditEvent:
    """A local patient id linked to its affinity domain id (`POST /api/patients`, `xdshub patient link`):
    Patient Record 110110 (PS3.16 CID 400), Create, as ITI TF-2a 3.8.5.1 audits a Patient Identity Feed.
    Both ids are patient objects (type 1, role 1, ID type RFC-3881 "2"), the domain id first, so a search of
    the trail by either finds the link; each says what it is as a description."""
    domain = ParticipantObject(domain_id, ObjectType.PERSON, ObjectRole.PATIENT, codes.PATIENT_NUMBER,
                               details=((codes.DESCRIPTION, b"affinity domain id"),))
    moved = f"; {rehomed} registry entries moved to the domain id" if rehomed else ""
    local = ParticipantObject(local_id, ObjectType.PERSON, ObjectRole.PATIENT, codes.PATIENT_NUMBER,
                              details=((codes.DESCRIPTION, f"local id at organisation {organisation_oid}".encode()),))
    return AuditEvent(event_id=codes.PATIENT_RECORD, action=Action.CREATE, outcome=Outcome.SUCCESS, time=time,
                      type_codes=(codes.PATIENT_RECORD,), participants=(_source(by), _destination(hub)),
                      source_id=source_id, objects=(domain, local),
                      outcome_description=f"local id {local_id} at {organisation_oid} linked to {domain_id}{moved}")
