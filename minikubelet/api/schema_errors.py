"""pydantic's validation errors, as the Kubernetes field errors a user reads.

The schema pass (``api.model``) checks shape only: unknown fields, types, enums, required
fields. Each of its errors becomes one ``FieldError`` with the k8s field path; the int-or-string
fields report one problem, not one per union member; an unknown field names the object it
appears in, with a did-you-mean when a real field is close (``periodSecond`` ->
``periodSeconds``).
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Sequence
from typing import Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from minikubelet.api.errors import ErrorType, FieldError
from minikubelet.api.field import invalid, not_supported, render_path
from minikubelet.api.model import Pod

# pydantic tags each member of a union (int | str) with its type; such errors are one problem.
_UNION_TAGS: Final = {"int": "an integer", "float": "a number", "str": "a string"}
_TYPE_NAMES: Final = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "datetime_type": "an RFC 3339 time",
    "datetime_parsing": "an RFC 3339 time",
    "datetime_from_date_parsing": "an RFC 3339 time",
}


def schema_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as Kubernetes field errors, one per field."""
    grouped: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_TAGS and error["type"] in _TYPE_NAMES:
            loc = loc[:-1]
        grouped.setdefault(loc, []).append(error)
    out: list[FieldError] = []
    for loc, errors in grouped.items():
        if len(errors) > 1 and all(e["type"] in _TYPE_NAMES for e in errors):
            kinds = list(dict.fromkeys(_TYPE_NAMES[e["type"]] for e in errors))
            expected = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
            out.append(invalid(render_path(loc), errors[0]["input"], f"must be {expected}"))
        else:
            out.extend(_schema_error(loc, e) for e in errors)
    return out


def _schema_error(loc: tuple[int | str, ...], error: ErrorDetails) -> FieldError:
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    path = render_path(loc)
    if kind == "missing":
        return FieldError(ErrorType.REQUIRED, path, "")
    if kind == "extra_forbidden":
        return FieldError(ErrorType.UNKNOWN_FIELD, render_path(loc[:-1]), _unknown(loc))
    if kind == "literal_error":
        supported = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return not_supported(path, value, supported)
    if kind in _TYPE_NAMES:
        return invalid(path, value, f"must be {_TYPE_NAMES[kind]}")
    message = error["msg"]
    return invalid(path, value, message[:1].lower() + message[1:])


def _unknown(loc: tuple[int | str, ...]) -> str:
    name = str(loc[-1])
    detail = f"unknown field {json.dumps(name)}"
    model = _model_at(loc[:-1])
    if model is not None:
        aliases = [f.alias or n for n, f in model.model_fields.items()]
        folded = {a.lower(): a for a in aliases}
        close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.75)
        if close:
            detail += f", did you mean {json.dumps(folded[close[0]])}?"
    return detail


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that the object at ``loc`` (wire names) is validated as."""
    current: object = Pod
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(part, int) and get_origin(current) is list:
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in by_alias:
                return None
            current = by_alias[str(part)].annotation
        else:
            return None
    current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_optional(annotation: object) -> object:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
