"""Errors that cross module boundaries, and the field-error shape users read.

    MinikubeletError
    ├── ManifestError        a manifest cannot become a pod: one or more FieldErrors, one file
    └── RuntimeFailure       an engine refused or failed an operation on a container or pod
        ├── ContainerConfigError   the spec cannot be turned into a container here
        │                          (kubelet: CreateContainerConfigError); retried with backoff
        ├── ImagePullError         the image could not be made present (ErrImagePull,
        │                          ErrImageNeverPull); retried as ImagePullBackOff
        └── StartFailure           the engine could not start the process (kubelet: StartError)

A FieldError renders the way Kubernetes' ``field.Error`` does, prefixed with the file it came
from: ``manifests/web.yaml: spec.containers[0].livenessProbe.periodSeconds: Invalid value: 0:
must be greater than or equal to 1``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum


class ErrorType(Enum):
    """field.ErrorType, with Kubernetes' wording."""

    NOT_FOUND = "Not found"
    REQUIRED = "Required value"
    DUPLICATE = "Duplicate value"
    INVALID = "Invalid value"
    NOT_SUPPORTED = "Unsupported value"
    FORBIDDEN = "Forbidden"
    TOO_LONG = "Too long"
    TOO_MANY = "Too many"
    UNKNOWN_FIELD = "Unknown field"


_NO_VALUE = object()


@dataclass(frozen=True, slots=True)
class FieldError:
    type: ErrorType
    path: str  # e.g. "spec.containers[0].livenessProbe.periodSeconds"; "" for the whole object
    detail: str
    value: object = _NO_VALUE

    def __str__(self) -> str:
        """field.Error.Error(): ``path: Type: value: detail``. Like field.ErrorBody, Required,
        Forbidden and Too long never show the value, and an empty detail adds nothing."""
        head = f"{self.path}: " if self.path else ""
        if self.type is ErrorType.UNKNOWN_FIELD:
            return f"{head}{self.detail}"
        body = self.type.value
        if self.value is not _NO_VALUE and self.type not in _VALUELESS:
            body += f": {_render(self.value)}"
        if self.detail:
            body += f": {self.detail}"
        return f"{head}{body}"


_VALUELESS = frozenset({ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG})
_MAX_RENDERED = 80  # an object or list as a bad value is shown, but not in full
_MAX_RENDERED_STRING = 200  # likewise a long string (k8s shows it all; logs and events need not)


def _render(value: object) -> str:
    if isinstance(value, str):
        if len(value) <= _MAX_RENDERED_STRING:
            return json.dumps(value)
        # A long string is shown by its start, and its length.
        head = json.dumps(value[: _MAX_RENDERED_STRING - 3])
        return f'{head[:-1]}..." ({len(value)} characters)'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    text = json.dumps(value, default=str)
    return text if len(text) <= _MAX_RENDERED else text[: _MAX_RENDERED - 3] + "..."


class MinikubeletError(Exception):
    """Base of every error minikubelet raises on purpose."""


class ManifestError(MinikubeletError):
    """A manifest that cannot become a pod. ``errors`` holds every problem found, not the first."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = errors
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {e}" for e in self.errors]


class RuntimeFailure(MinikubeletError):
    """An engine operation failed. The message is shown to users as the event text."""


class ContainerConfigError(RuntimeFailure):
    """The container spec cannot be realised here (kubelet's CreateContainerConfigError)."""


class StartFailure(RuntimeFailure):
    """The process could not be started (kubelet's StartError, exit code 128)."""


class ImagePullError(RuntimeFailure):
    """An image could not be made present. ``reason`` is kubelet's waiting reason:
    ``ErrImagePull`` (a pull failed) or ``ErrImageNeverPull`` (missing, policy Never)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
