"""The nouns of the model registry: registered models, versions, aliases, reviews, users and
the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ApiToken",
    "AuditEntry",
    "ModelVersion",
    "RegisteredModel",
    "ReviewState",
    "Role",
    "User",
]


class Role(StrEnum):
    """What a user may do. ``ADMIN`` may do everything, ``APPROVER`` may approve versions,
    ``MEMBER`` may log and register, ``VIEWER`` may only read (on the platform server)."""

    VIEWER = "viewer"
    MEMBER = "member"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Viewer 0 < member 1 < approver 2 < admin 3: each may do what those below may."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token of a user. Only a hash of its secret is stored; the secret is shown
    once, when the token is made."""

    token_id: str
    user: str
    name: str
    created_at: int
    created_by: str
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None

    def usable(self, now: int) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class ReviewState(StrEnum):
    """Where a model version is in review. Governed models need ``APPROVED`` for champion."""

    NONE = "none"
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model whose versions are tracked, aliased and (if governed) reviewed."""

    name: str
    created_at: int
    created_by: str
    description: str = ""
    governed: bool = False
    aliases: dict[str, int] = field(default_factory=dict)
    """Alias -> version number, e.g. ``{"champion": 3}``."""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a registered model: the stored model files and where they came from."""

    model: str
    version: int
    digest: str
    """Digest of the model folder (its manifest) in the artifact store."""
    flavor: str
    created_at: int
    created_by: str
    """The author: who may not approve this version."""
    run_id: str | None = None
    source: str = ""
    description: str = ""
    review: ReviewState = ReviewState.NONE
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    created_at: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One append-only record of a change. ``hash`` chains it to the entry before."""

    seq: int
    at: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
