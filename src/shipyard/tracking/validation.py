"""What a key or value may look like. Checked before anything reaches a store."""

from __future__ import annotations

import re
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "int64",
    "metric_value",
    "param_value",
    "tag_value",
    "validate_key",
    "validate_name",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_NAME_LENGTH = 256
_INT64 = (-(2**63), 2**63 - 1)
_KEY = re.compile(r"^[\w\-. /:]+$")


def validate_key(kind: str, key: str) -> str:
    """Return ``key`` if it is a valid param/metric/tag name, else raise with the rule."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise InvalidArgumentError(
            f"invalid {kind} name {key!r}: use 1-{MAX_KEY_LENGTH} letters, digits, "
            "'_', '-', '.', ' ', '/' or ':'"
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgumentError(f"invalid {kind} name {key!r}: no leading '/' or '..'")
    return key


def _no_nul(kind: str, key: str, text: str) -> str:
    if "\x00" in text:
        raise InvalidArgumentError(f"{kind} {key!r} contains a NUL character, which no store keeps")
    return text


def param_value(key: str, value: Any) -> str:
    """Params are stored as strings, the way ``str()`` shows them."""
    text = _no_nul("param", key, value if isinstance(value, str) else str(value))
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidArgumentError(
            f"param {key!r} is {len(text)} characters long; the limit is "
            f"{MAX_PARAM_VALUE_LENGTH} (log long values as an artifact)"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    text = _no_nul("tag", key, value if isinstance(value, str) else str(value))
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidArgumentError(
            f"tag {key!r} is {len(text)} characters long; the limit is {MAX_TAG_VALUE_LENGTH}"
        )
    return text


def metric_value(key: str, value: Any) -> float:
    """A metric value as float. NaN and ±inf are allowed; strings, bools and None are not."""
    if isinstance(value, float):
        return value
    if value is None or isinstance(value, str | bytes | bool):
        raise InvalidArgumentError(f"metric {key!r} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"metric {key!r} must be a number, not {value!r}") from exc


def validate_name(kind: str, name: str) -> str:
    """An experiment or run name: 1-256 characters, no NUL, not only spaces."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"invalid {kind} name {name!r}: use 1-{MAX_NAME_LENGTH} characters"
        )
    return _no_nul(kind, "name", name)


def int64(what: str, value: Any) -> int:
    """A step or timestamp: an integer that fits the stores' 64-bit columns."""
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__"):  # numpy integers
            value = value.__index__()
        else:
            raise InvalidArgumentError(f"{what} must be an integer, not {value!r}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise InvalidArgumentError(f"{what} {value} does not fit in 64 bits")
    return int(value)
