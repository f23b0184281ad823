"""Secrets people and browsers present: random tokens kept only as digests, and passwords kept as argon2id.

Tokens (console sessions, share links and their visits) carry 256 random
bits, URL-safe; the database holds their SHA-256, so a copy of it hands out
nothing. Passwords and passcodes are hashed with argon2id (RFC 9106), the
memory-hard function OWASP recommends first, through argon2-cffi at its
default cost (64 MiB, 3 passes); a check against no hash costs the same as
one against a real hash, so the two cannot be told apart by time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MAX_SECRET_LENGTH", "TOKEN_BYTES", "hash_secret", "new_token", "same_token", "secret_needs_rehash",
           "token_digest", "verify_secret"]

TOKEN_BYTES = 32
MAX_SECRET_LENGTH = 1024          # longer passwords are cut here before hashing (argon2 takes any length)

_hasher = PasswordHasher()
_NOTHING = _hasher.hash("no secret here")    # checked against when there is no hash


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """The hex SHA-256 a token is stored as."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def same_token(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison of two tokens (or digests); False when either is missing."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "replace"), presented.encode("utf-8", "replace"))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret[:MAX_SECRET_LENGTH])


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """Whether `secret` is the one `secret_hash` was made from; False (at the same cost) when there is no hash."""
    try:
        return _hasher.verify(secret_hash or _NOTHING, secret[:MAX_SECRET_LENGTH]) and secret_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def secret_needs_rehash(secret_hash: str) -> bool:
    """Made with an older cost: renew it at the next successful check."""
    return _hasher.check_needs_rehash(secret_hash)
