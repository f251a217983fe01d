"""What a key or value may look like. Checked before anything reaches a store."""

from __future__ import annotations

import re
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "metric_value",
    "param_value",
    "tag_value",
    "validate_key",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_KEY = re.compile(r"^[\w\-. /:]+$")


def validate_key(kind: str, key: str) -> str:
    """Return ``key`` if it is a valid param/metric/tag name, else raise with the rule."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidArgumentError(
            f"invalid {kind} name {key!r}: use 1-{MAX_KEY_LENGTH} letters, digits, "
            "'_', '-', '.', ' ', '/' or ':'"
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgumentError(f"invalid {kind} name {key!r}: no leading '/' or '..'")
    return key


def param_value(key: str, value: Any) -> str:
    """Params are stored as strings, the way ``str()`` shows them."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidArgumentError(
            f"param {key!r} is {len(text)} characters long; the limit is "
            f"{MAX_PARAM_VALUE_LENGTH} (log long values as an artifact)"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
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
