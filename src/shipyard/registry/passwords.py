"""Users' passwords, for people who log in (``shipyard login``, HTTP Basic from the ``mlflow``
client, the web UI): hashed with scrypt — a memory-hard KDF from the standard library
(OpenSSL's) — with a random salt per password; only the hash is stored. There is no default
password: a user has none until one is set, and until then logs in with a token only.

Example:
    >>> stored = hash_password("correct horse battery")  # doctest: +SKIP
    >>> verify_password("correct horse battery", stored)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from shipyard.errors import AuthenticationError, InvalidArgumentError
from shipyard.registry.service import Registry
from shipyard.store import Backend

__all__ = ["MIN_LENGTH", "check_password", "hash_password", "set_password", "verify_password"]

MIN_LENGTH = 12
"""The shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for more)."""

# scrypt's cost: N=2^15, r=8 (32 MiB, ~50-100 ms here), p=1 — OWASP's recommended minimum
# is N=2^17 with r=8 *or* an equivalent; 2^15 keeps a login under a tenth of a second.
_N, _R, _P, _LENGTH = 2**15, 8, 1, 32
_MAX_MEMORY = 64 * 2**20


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``password`` (base64 salt and hash).

    Raises:
        InvalidArgumentError: shorter than :data:`MIN_LENGTH`, or longer than 1,024 characters.
    """
    if len(password) < MIN_LENGTH:
        raise InvalidArgumentError(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidArgumentError("a password has at most 1,024 characters")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAX_MEMORY, dklen=_LENGTH
    )
    return f"scrypt${_N}${_R}${_P}${_encode(salt)}${_encode(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (compared in constant time)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(
            password.encode()[:4096],
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAX_MEMORY,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def check_password(backend: Backend, user: str, password: str) -> None:
    """Raises:
    AuthenticationError: ``user`` is unknown, has no password, or this is not it (one
        message for all three, so that a guess learns nothing)."""
    stored = backend.get_user_password_hash(user) if backend.get_user(user) else None
    if stored is None or not verify_password(password, stored):
        raise AuthenticationError("wrong user name or password")


def set_password(backend: Backend, acting: str, user: str, password: str | None) -> None:
    """Set (or with ``None`` remove) ``user``'s password: users set their own, admins anyone's.

    Raises:
        PermissionDeniedError: someone else's password, by anyone but an admin.
        NotFoundError: ``user`` is not a user.
        InvalidArgumentError: the password is too short or too long.
    """
    from shipyard.store.rest import RestBackend

    if isinstance(backend, RestBackend):  # the server hashes it, acting as the caller
        backend.set_password_remotely(user, password)
        return
    if user != acting:
        Registry(backend, acting)._require(doing=f"set {user!r}'s password")
    hashed = None if password is None else hash_password(password)
    backend.set_user_password(user, hashed, actor=acting)
