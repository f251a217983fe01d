"""The registry's rules: naming, aliases, governance (four-eyes review) and roles.

They live here, above the store, so that the CLI and the Python API today, and the platform
server later, enforce exactly the same rules. Every change reaches the store as one
transaction together with its audit entry.
"""

from __future__ import annotations

import re

from shipyard.entities import ModelVersion, RegisteredModel, ReviewState, Role, User
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.store import Backend

__all__ = ["CHAMPION", "Registry", "parse_model_ref", "validate_model_name"]

CHAMPION = "champion"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")


def validate_model_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgumentError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``churn@champion`` -> ``("churn", "champion")``; a bare name means ``latest``."""
    name, sep, selector = ref.strip().partition("@")
    validate_model_name(name)
    if sep and not selector:
        raise InvalidArgumentError(f"{ref!r}: give a version or alias after '@'")
    return name, selector or "latest"


class Registry:
    """Registered models as one user sees and changes them.

    Args:
        backend: the metadata store.
        user: who is acting (``Settings.user``: ``SHIPYARD_USER`` or the OS user).
    """

    def __init__(self, backend: Backend, user: str) -> None:
        self.backend = backend
        self.user = user

    # who may do what -------------------------------------------------------------------------

    def role_of(self, name: str) -> Role:
        """A user's role; anyone not listed is a member."""
        found = self.backend.get_user(name)
        return found.role if found is not None else Role.MEMBER

    def _require(self, *roles: Role, doing: str) -> None:
        role = self.role_of(self.user)
        if role is not Role.ADMIN and role not in roles:
            needed = " or ".join(r.value for r in (*roles, Role.ADMIN))
            raise PermissionDeniedError(
                f"{self.user!r} may not {doing}: it needs the {needed} role (ask an admin: "
                f"`shipyard users add {self.user} --role {roles[0].value if roles else 'admin'}`)"
            )

    def bootstrap_admin(self) -> bool:
        """Make the acting user admin when nobody has a role yet (``shipyard init`` does this).
        Returns whether it did. A workspace on a server never does: its first admin is made
        on the server's host (``shipyard server --auth --init-admin``), and listing users over
        HTTP is for admins."""
        from shipyard.store.rest import RestBackend

        if isinstance(self.backend, RestBackend) or self.backend.list_users():
            return False
        self.backend.set_user(self.user, Role.ADMIN, actor=self.user)
        return True

    def set_user(self, name: str, role: Role | str) -> None:
        """Give ``name`` a role. Only admins may; the first user may make themself admin."""
        if not name.strip():
            raise InvalidArgumentError("a user name cannot be empty")
        try:
            wanted = Role(role)
        except ValueError:
            raise InvalidArgumentError(
                f"unknown role {role!r}: use {', '.join(r.value for r in Role)}"
            ) from None
        users = self.backend.list_users()
        if users:
            self._require(doing="change roles")
            admins = {u.name for u in users if u.role is Role.ADMIN}
            if wanted is not Role.ADMIN and admins == {name}:
                raise ConflictError(f"{name!r} is the last admin: make someone else an admin first")
        elif not (name == self.user and wanted is Role.ADMIN):
            raise PermissionDeniedError(
                "nobody has a role yet: run `shipyard init` (it makes you admin) first"
            )
        self.backend.set_user(name, wanted, actor=self.user)

    def users(self) -> list[User]:
        return self.backend.list_users()

    # models and versions -------------------------------------------------------------------

    def model(self, name: str) -> RegisteredModel:
        return self.backend.get_registered_model(validate_model_name(name))

    def models(self) -> list[RegisteredModel]:
        return self.backend.list_registered_models()

    def versions(self, name: str) -> list[ModelVersion]:
        return self.backend.list_model_versions(validate_model_name(name))

    def resolve(self, ref: str) -> ModelVersion:
        """``name@3``, ``name@latest``, ``name@<alias>`` or ``name`` -> the version."""
        name, selector = parse_model_ref(ref)
        if selector == "latest":
            number = self.backend.latest_model_version(name)
        elif selector.isdigit():
            number = int(selector)
            if number >= 2**31:
                raise NotFoundError(f"model {name!r} has no version {selector}")
        else:
            number = self.backend.resolve_model_alias(name, selector)
        return self.backend.get_model_version(name, number)

    def register(
        self,
        name: str,
        *,
        digest: str,
        flavor: str,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
    ) -> ModelVersion:
        """The next version of ``name`` (registered on first use), authored by this user."""
        return self.backend.create_model_version(
            validate_model_name(name),
            digest=digest,
            flavor=flavor,
            actor=self.user,
            run_id=run_id,
            source=source,
            description=description,
        )

    def set_governed(self, name: str, governed: bool = True) -> None:
        """Governed models need an approved version for ``champion``. Admins only."""
        self._require(doing="change whether a model is governed")
        model = self.backend.get_registered_model(validate_model_name(name))
        champion = model.aliases.get(CHAMPION)
        if governed and champion is not None:
            current = self.backend.get_model_version(model.name, champion)
            if current.review is not ReviewState.APPROVED:
                raise PermissionDeniedError(
                    f"{current.ref} is {CHAMPION} but not approved: have it reviewed, or move "
                    f"the alias, before governing {model.name}"
                )
        self.backend.set_model_governed(model.name, governed, actor=self.user)

    # aliases -------------------------------------------------------------------------------

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        """Point ``alias`` at the version ``ref`` names (moving it atomically)."""
        if not _ALIAS.fullmatch(alias or "") or alias == "latest" or alias.isdigit():
            raise InvalidArgumentError(
                f"invalid alias {alias!r}: start with a letter; letters, digits, '_' and '-' "
                "('latest' is reserved)"
            )
        version = self.resolve(ref)
        model = self.backend.get_registered_model(version.model)
        guarded = model.governed and alias == CHAMPION
        if guarded and version.review is not ReviewState.APPROVED:
            raise PermissionDeniedError(
                f"{version.ref} is not approved ({version.review.value}); {model.name} is "
                f"governed, so only an approved version can become {CHAMPION}: "
                f"`shipyard models request-review {version.ref}`"
            )
        # The approval is checked again inside the write, against a concurrent rejection.
        self.backend.set_model_alias(
            version.model, alias, version.version, actor=self.user, require_approved=guarded
        )
        return self.backend.get_model_version(version.model, version.version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; a governed model's champion only by an approver or admin."""
        model = self.backend.get_registered_model(validate_model_name(name))
        if model.governed and alias == CHAMPION:
            self._require(Role.APPROVER, doing=f"remove the {CHAMPION} of a governed model")
        self.backend.delete_model_alias(model.name, alias, actor=self.user)

    # review --------------------------------------------------------------------------------

    def request_review(self, ref: str, comment: str = "") -> ModelVersion:
        version = self.resolve(ref)
        if version.review is ReviewState.APPROVED:
            raise InvalidArgumentError(f"{version.ref} is already approved")
        self.backend.set_review_state(
            version.model,
            version.version,
            ReviewState.REQUESTED,
            actor=self.user,
            comment=comment,
        )
        return self.backend.get_model_version(version.model, version.version)

    def _decide(self, ref: str, state: ReviewState, comment: str) -> ModelVersion:
        verb = "approve" if state is ReviewState.APPROVED else "reject"
        self._require(Role.APPROVER, doing=f"{verb} model versions")
        version = self.resolve(ref)
        trained_by = self.backend.get_run(version.run_id).user if version.run_id else None
        if self.user in (version.created_by, trained_by):
            role = "registered" if self.user == version.created_by else "trained"
            raise PermissionDeniedError(
                f"{self.user!r} {role} {version.ref} and so may not {verb} it: "
                "another approver must review it (four-eyes rule)"
            )
        if version.review is not ReviewState.REQUESTED:
            raise InvalidArgumentError(
                f"{version.ref} is {version.review.value}, not awaiting review: "
                f"`shipyard models request-review {version.ref}` first"
            )
        if state is ReviewState.REJECTED and not comment.strip():
            raise InvalidArgumentError("say why in --comment when rejecting a version")
        self.backend.set_review_state(
            version.model,
            version.version,
            state,
            actor=self.user,
            comment=comment,
            expected=ReviewState.REQUESTED,
        )
        return self.backend.get_model_version(version.model, version.version)

    def approve(self, ref: str, comment: str = "") -> ModelVersion:
        """Approve a version awaiting review: approver role, and not its author."""
        return self._decide(ref, ReviewState.APPROVED, comment)

    def reject(self, ref: str, comment: str) -> ModelVersion:
        """Reject a version awaiting review (a comment is required)."""
        return self._decide(ref, ReviewState.REJECTED, comment)

    def tag(self, ref: str, key: str, value: str) -> None:
        if "@" in ref:
            version = self.resolve(ref)
            self.backend.set_model_tag(version.model, version.version, key, value, actor=self.user)
        else:
            self.backend.set_model_tag(validate_model_name(ref), 0, key, value, actor=self.user)

    def audit_problems(self) -> list[str]:
        return self.backend.verify_audit()
