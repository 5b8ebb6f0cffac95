"""Building ``FieldError``s the way ``apimachinery/pkg/util/validation/field`` does.

``invalid``, ``forbidden``, ``not_supported`` and ``too_long`` are field.Invalid,
field.Forbidden, field.NotSupported and field.TooLong; ``render_path`` is field.Path's String();
``at_least`` and ``in_range`` are the single-field range checks (ValidateNonnegativeField,
InclusiveRangeError) that every validator shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Final

from minikubelet.api.errors import ErrorType, FieldError

# Map-valued fields: their keys render as subscripts, ``resources.limits[cpu]``.
_MAP_FIELDS: Final = frozenset({"labels", "annotations", "limits", "requests"})


def invalid(path: str, value: object, detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, path, detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, path, detail)


def not_supported(path: str, value: object, supported: Iterable[str]) -> FieldError:
    listed = ", ".join(json.dumps(s) for s in supported)
    return FieldError(ErrorType.NOT_SUPPORTED, path, f"supported values: {listed}", value)


def at_least(path: str, value: int | None, minimum: int) -> list[FieldError]:
    """``path: Invalid value: V: must be greater than or equal to MIN``, or nothing."""
    if value is None or value >= minimum:
        return []
    return [invalid(path, value, f"must be greater than or equal to {minimum}")]


def in_range(path: str, value: int | None, low: int, high: int) -> list[FieldError]:
    """``path: Invalid value: V: must be between LOW and HIGH, inclusive`` (InclusiveRangeError),
    or nothing."""
    if value is None or low <= value <= high:
        return []
    return [invalid(path, value, f"must be between {low} and {high}, inclusive")]


def too_long(path: str, text: str | None, limit: int) -> list[FieldError]:
    """field.TooLong for a string longer than ``limit`` bytes (UTF-8), or nothing."""
    if text is None or len(text) <= limit // 4 or len(text.encode()) <= limit:
        return []
    return [FieldError(ErrorType.TOO_LONG, path, f"may not be more than {limit} bytes")]


def render_path(loc: Sequence[int | str]) -> str:
    """``("spec", "containers", 0, "resources", "limits", "cpu")`` ->
    ``spec.containers[0].resources.limits[cpu]`` (field.Path's String())."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int) or previous in _MAP_FIELDS:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out
