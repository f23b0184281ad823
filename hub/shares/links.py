"""What a share link allows: its token, passcode, uses, expiry and revocation, and the visits it opens.

The URL's token carries 256 random bits and is stored only as its SHA-256;
a link is found by that digest and the digests are compared in constant time.
A link opens *visits*: the first request of a browser (after the passcode,
when there is one) consumes one use and sets a cookie whose token, stored
only as a digest too, lets that browser load the study's images until the
visit ends (`share_visit_seconds`, never past the link's expiry). Revoking a
link ends its visits at once.

`LinkGone` is a link that no longer opens (expired, revoked, locked after
too many wrong passcodes, or used up); `UnknownLink` one that never existed.
The caller commits what these functions change, with the audit record.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.credentials import hash_secret, new_token, token_digest, verify_secret
from hub.shares.tables import LAUNCH, LINK, ShareLink, ShareVisit

__all__ = ["LinkGone", "LinkPolicy", "NewLink", "ShareRequest", "UnknownLink", "WrongPasscode", "check_passcode",
           "create_link", "find_link", "find_visit", "link_status", "revoke", "start_visit"]

ID_BYTES = 9
MAX_PASSCODE_LENGTH = 256

ACTIVE, EXPIRED, REVOKED, LOCKED, USED_UP = "active", "expired", "revoked", "locked", "used up"
GONE_MESSAGES = {
    EXPIRED: "This link has expired.",
    REVOKED: "This link has been withdrawn by the organisation that shared it.",
    LOCKED: "This link is locked: the passcode was entered wrongly too many times.",
    USED_UP: "This link has been used as many times as it allows.",
}


class UnknownLink(LookupError):
    """No link has this token (or the token is malformed)."""


class LinkGone(Exception):
    def __init__(self, link: ShareLink, status: str) -> None:
        super().__init__(GONE_MESSAGES[status])
        self.link = link
        self.status = status


class WrongPasscode(Exception):
    def __init__(self, link: ShareLink, attempts_left: int) -> None:
        super().__init__("wrong passcode" + (f": {attempts_left} attempt(s) left" if attempts_left else
                                             "; the link is now locked"))
        self.link = link
        self.attempts_left = attempts_left


@dataclass(frozen=True)
class LinkPolicy:
    default_seconds: int
    max_seconds: int
    passcode_attempts: int
    visit_seconds: int


@dataclass(frozen=True)
class ShareRequest:
    """What an organisation asks to share (already checked at the edge)."""

    study_uid: str
    series_uids: Sequence[str] = ()
    expires_in: int | None = None
    passcode: str | None = None
    max_uses: int | None = None
    recipient: str = ""
    show_patient: bool = True


@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    token: str      # given out once, in the URL


def _now(now: datetime | None) -> datetime:
    return as_utc(now) if now is not None else datetime.now(UTC)


def create_link(session: Session, organisation_id: int, created_by: str, wanted: ShareRequest,
                policy: LinkPolicy, *, kind: str = LINK, now: datetime | None = None) -> NewLink:
    """A new link; its lifetime is `expires_in` (default `policy.default_seconds`) cut to `policy.max_seconds`."""
    now = _now(now)
    lifetime = min(wanted.expires_in or policy.default_seconds, policy.max_seconds)
    token = new_token()
    link = ShareLink(
        id=secrets.token_hex(ID_BYTES), token_hash=token_digest(token), kind=kind, organisation_id=organisation_id,
        created_by=created_by[:256], study_instance_uid=wanted.study_uid, series_uids=" ".join(wanted.series_uids),
        recipient=wanted.recipient[:256], show_patient=wanted.show_patient,
        passcode_hash=hash_secret(wanted.passcode) if wanted.passcode else None, failed_attempts=0,
        max_uses=wanted.max_uses, uses=0, created_at=now, expires_at=now + timedelta(seconds=lifetime))
    session.add(link)
    session.flush()
    return NewLink(link, token)


def link_status(link: ShareLink, now: datetime | None = None) -> str:
    now = _now(now)
    if link.revoked_at is not None:
        return REVOKED
    if link.locked_at is not None:
        return LOCKED
    if as_utc(link.expires_at) <= now:
        return EXPIRED
    if link.max_uses is not None and link.uses >= link.max_uses:
        return USED_UP
    return ACTIVE


def _well_formed(token: str) -> bool:
    return 16 <= len(token) <= 128 and all(c.isalnum() or c in "-_" for c in token)


def find_link(session: Session, token: str, *, for_update: bool = False) -> ShareLink:
    """The link of `token`, whatever its status; UnknownLink when there is none."""
    if not _well_formed(token):
        raise UnknownLink("no such link")
    query = select(ShareLink).where(ShareLink.token_hash == token_digest(token))
    link = session.scalar(query.with_for_update() if for_update else query)
    if link is None:            # the lookup compares digests: no timing tells of the token itself
        raise UnknownLink("no such link")
    return link


def _refuse_gone(link: ShareLink, now: datetime) -> None:
    status = link_status(link, now)
    if status != ACTIVE:
        raise LinkGone(link, status)


def check_passcode(link: ShareLink, passcode: str, policy: LinkPolicy, now: datetime | None = None) -> None:
    """Nothing when `passcode` is the link's; else WrongPasscode (the link locks after the last attempt)."""
    now = _now(now)
    _refuse_gone(link, now)
    if verify_secret(link.passcode_hash, passcode[:MAX_PASSCODE_LENGTH]):
        link.failed_attempts = 0
        return
    link.failed_attempts += 1
    left = max(policy.passcode_attempts - link.failed_attempts, 0)
    if left == 0:
        link.locked_at = now
    raise WrongPasscode(link, left)


def start_visit(session: Session, link: ShareLink, policy: LinkPolicy, address: str, user_agent: str,
                now: datetime | None = None) -> tuple[str, ShareVisit]:
    """Consume one use of an active link and open a visit; answers the cookie's token and the visit."""
    now = _now(now)
    _refuse_gone(link, now)
    link.uses += 1
    link.last_used_at = now
    session.execute(delete(ShareVisit).where(ShareVisit.link_id == link.id, ShareVisit.expires_at <= now))
    token = new_token()
    visit = ShareVisit(token_hash=token_digest(token), link_id=link.id, created_at=now,
                       expires_at=min(now + timedelta(seconds=policy.visit_seconds), as_utc(link.expires_at)),
                       client_address=(address or "")[:64], user_agent=(user_agent or "")[:256])
    session.add(visit)
    session.flush()
    return token, visit


def find_visit(session: Session, link: ShareLink, token: str | None, now: datetime | None = None) -> ShareVisit | None:
    """The live visit of this link that `token` opened, or None. Reads only (ended visits are swept by
    `start_visit`)."""
    if not token or not _well_formed(token):
        return None
    now = _now(now)
    visit = session.get(ShareVisit, token_digest(token))
    if visit is None or visit.link_id != link.id:
        return None
    if as_utc(visit.expires_at) <= now or link.revoked_at is not None or as_utc(link.expires_at) <= now:
        return None
    return visit


def revoke(session: Session, link: ShareLink, now: datetime | None = None) -> None:
    """Withdraw the link and end its visits at once."""
    if link.revoked_at is None:
        link.revoked_at = _now(now)
    session.execute(delete(ShareVisit).where(ShareVisit.link_id == link.id))


def organisation_links(session: Session, organisation_id: int) -> list[ShareLink]:
    """The organisation's share links (not the clinicians' launches), newest first."""
    return list(session.scalars(select(ShareLink).where(ShareLink.organisation_id == organisation_id,
                                                        ShareLink.kind == LINK)
                                .order_by(ShareLink.created_at.desc(), ShareLink.id)))


def is_launch(link: ShareLink) -> bool:
    return link.kind == LAUNCH
