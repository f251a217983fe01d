"""Errors Shipyard raises on purpose.

Every error a user can cause is a :class:`ShipyardError`; its message says what to fix. The CLI
prints it as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ArtifactCorruptedError",
    "AuthenticationError",
    "ConflictError",
    "FilterSyntaxError",
    "InputMismatchError",
    "InvalidArgumentError",
    "NotFoundError",
    "ParamConflictError",
    "PermissionDeniedError",
    "ShipyardError",
    "StoreError",
    "UnsafePathError",
    "UntrustedModelError",
    "WorkspaceNotFoundError",
]


class ShipyardError(Exception):
    """Base class of every error Shipyard raises on purpose."""

    exit_code: int = 1


class InvalidArgumentError(ShipyardError, ValueError):
    """An argument has a value Shipyard cannot accept."""

    exit_code = 2


class NotFoundError(ShipyardError, LookupError):
    """The experiment, run, artifact or object asked for does not exist."""


class AlreadyExistsError(ShipyardError):
    """Something with that name already exists."""


class ParamConflictError(InvalidArgumentError):
    """A parameter was logged twice on one run with two different values."""


class FilterSyntaxError(InvalidArgumentError):
    """A search filter or order-by clause could not be parsed.

    Attributes:
        text: the whole filter string.
        position: 0-based offset of the bad token in ``text``.
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = " " * position + "^"
        super().__init__(f"{message}\n  {text}\n  {pointer}")


class InputMismatchError(InvalidArgumentError):
    """Input given to a model does not match its signature.

    Attributes:
        field: the column or tensor at fault.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class UntrustedModelError(ShipyardError):
    """A model holds something Shipyard will not load without an explicit opt-in (or at all):
    a pickle, a type outside the skops allow-list, code to import."""


class ArtifactCorruptedError(ShipyardError):
    """Bytes read from the artifact store do not match their digest."""


class ConflictError(ShipyardError):
    """Someone else changed the object between reading and writing it; nothing was written."""

    exit_code = 4


class UnsafePathError(InvalidArgumentError):
    """A user-supplied path would escape the folder it must stay in."""


class PermissionDeniedError(ShipyardError):
    """The acting user may not do this: their role, or the four-eyes rule, forbids it."""

    exit_code = 3


class AuthenticationError(ShipyardError):
    """No valid credentials: no token, or an unknown, revoked or expired one."""

    exit_code = 3


class StoreError(ShipyardError):
    """The metadata store could not complete an operation (after retries)."""


class WorkspaceNotFoundError(ShipyardError):
    """No ``.shipyard/`` folder was found and none was configured."""
