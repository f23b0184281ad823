"""Console accounts: local users with one role, argon2id passwords, lockout after repeated failures.

Passwords are hashed with argon2id (RFC 9106), the memory-hard function
OWASP recommends first, through argon2-cffi with its default cost (64 MiB,
3 passes); a hash made with an older cost is renewed at the next login.

`authenticate` refuses with `LoginRefused`, whose `reason` is for the audit
trail and whose `message` is for the person at the login form: an unknown
name and a wrong password read the same there. After
`console_lockout_attempts` consecutive failures the account is locked for
`console_lockout_seconds`; while locked even the right password is refused
and is not checked. The caller commits what `authenticate` changed (the
failure count, the lock), with the login's audit record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import as_utc
from hub.console.tables import ConsoleUser
from hub.credentials import MAX_SECRET_LENGTH, hash_secret, secret_needs_rehash, verify_secret

ROLES = ("compliance", "admin", "clinician")
AUDIT_ROLES = frozenset({"compliance", "admin"})      # may open the compliance console
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = MAX_SECRET_LENGTH
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")



class AccountError(ValueError):
    """A request to create or change an account that cannot be done (bad name, role or password)."""


class LoginRefused(Exception):
    def __init__(self, reason: str, message: str = "Wrong name or password.") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LockoutPolicy:
    attempts: int
    seconds: int


def normalise_name(name: str) -> str:
    return name.strip().lower()


def check_name(name: str) -> str:
    name = normalise_name(name)
    if not NAME.fullmatch(name):
        raise AccountError(f"account names are 1 to 64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or "
                           f"digit; got {name!r}")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a console password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"a console password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


def find_user(session: Session, name: str, *, for_update: bool = False) -> ConsoleUser | None:
    query = select(ConsoleUser).where(ConsoleUser.name == normalise_name(name))
    return session.scalar(query.with_for_update() if for_update else query)


def add_user(session: Session, name: str, role: str, password: str, now: datetime | None = None) -> ConsoleUser:
    """A new account (the caller commits); AccountError for a bad or taken name, role or password."""
    name, role, password = check_name(name), check_role(role), check_password(password)
    if find_user(session, name) is not None:
        raise AccountError(f"console account {name!r} exists already")
    user = ConsoleUser(name=name, role=role, password_hash=hash_secret(password), failed_attempts=0,
                       disabled=False, created_at=now or datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def set_password(user: ConsoleUser, password: str) -> None:
    user.password_hash = hash_secret(check_password(password))
    unlock(user)


def unlock(user: ConsoleUser) -> None:
    user.failed_attempts = 0
    user.locked_until = None


def is_locked(user: ConsoleUser, now: datetime) -> bool:
    return user.locked_until is not None and as_utc(user.locked_until) > now


def authenticate(session: Session, name: str, password: str, policy: LockoutPolicy,
                 now: datetime | None = None) -> ConsoleUser:
    """The account `name` when `password` is its password; LoginRefused otherwise (the caller commits)."""
    now = now or datetime.now(UTC)
    user = find_user(session, name, for_update=True) if NAME.fullmatch(normalise_name(name)) else None
    if user is None:
        verify_secret(None, password)      # costs what a wrong password costs
        raise LoginRefused(f"unknown console account {normalise_name(name)[:64]!r}")
    if user.disabled:
        raise LoginRefused("account disabled")
    if is_locked(user, now):
        assert user.locked_until is not None
        until = as_utc(user.locked_until).strftime("%H:%M UTC")
        raise LoginRefused("account locked after repeated failed logins",
                           f"This account is locked after repeated failed logins until {until}. "
                           "Try again then, or ask an administrator to unlock it.")
    if not verify_secret(user.password_hash, password):
        user.failed_attempts += 1
        if user.failed_attempts >= policy.attempts:
            user.failed_attempts = 0
            user.locked_until = now + timedelta(seconds=policy.seconds)
            raise LoginRefused(f"wrong password; account locked for {policy.seconds} s after {policy.attempts} "
                               "consecutive failures")
        raise LoginRefused(f"wrong password (failure {user.failed_attempts} of {policy.attempts})")
    unlock(user)
    user.last_login_at = now
    if secret_needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)
    return user

