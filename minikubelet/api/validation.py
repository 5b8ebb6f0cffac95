"""Manifest decoding, validation and defaulting: bytes in, a Pod or every problem out.

``decode_pod`` follows kubelet's static-pod path (``pkg/kubelet/config/common.go``): decode one
object, check its type, validate it as the API server would, default it, then refuse what a
static pod may not reference. Each stage reports everything it finds, in Kubernetes' own words
(``pkg/apis/core/validation/validation.go``, ``apimachinery/pkg/util/validation``), as
``FieldError``s with the k8s field path (``spec.containers[0].livenessProbe.periodSeconds``,
map keys as ``resources.limits[cpu]``).

The stages are:
1. YAML or JSON -> one mapping of kind Pod, apiVersion v1. YAML timestamps stay strings, as
   they do in Kubernetes' YAML-to-JSON step.
2. The schema (``api.model``): pydantic's errors become field errors. Unknown fields name the
   object they appear in, with a did-you-mean when a real field is close. This stage stops the
   pipeline: rules across fields need a well-formed object.
3. The rules a schema cannot say (``validate_pod``), all reported at once. Two deliberate
   departures from the API server: ``image`` is optional (the process runtime needs none) and a
   ``mountPath`` must be absolute; and minikubelet backs only emptyDir and hostPath volumes.
4. kubelet's own static-pod rule (PreventStaticPodAPIReferences): no ServiceAccount, Secret,
   ConfigMap, PVC or ResourceClaim. Reported with the other errors, one per reference.
5. ``default_pod``: SetDefaults_Pod / SetDefaults_Container for what the models cannot default.

Warnings name every real Kubernetes field that was set but that minikubelet does not act on.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from minikubelet.api.env import split_subscripted_path
from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.api.model import (
    Container,
    EnvVar,
    HTTPGetAction,
    LifecycleHandler,
    ObjectFieldSelector,
    ObjectMeta,
    Pod,
    PodSpec,
    Probe,
    ResourceFieldSelector,
    ResourceRequirements,
    Spec,
    Volume,
)
from minikubelet.api.quantity import canonical_quantity, parse_quantity

RUNTIME_CLASSES: Final = ("containerd", "podman", "process")


@dataclass(frozen=True, slots=True)
class DecodedPod:
    pod: Pod  # defaulted and validated
    warnings: tuple[
        str, ...
    ]  # one per real-but-unused field: "spec.affinity: ..." (no file prefix)


def decode_pod(data: bytes, *, source: str) -> DecodedPod:
    """YAML or JSON bytes -> a defaulted, validated Pod. Raises ManifestError with every problem,
    each FieldError's path relative to the object; ``source`` names the file in messages."""
    obj = _load(data, source=source)
    type_errors = _check_type_meta(obj)
    if type_errors:
        raise ManifestError(source, type_errors)
    try:
        pod = Pod.model_validate_json(json.dumps(obj))
    except ValidationError as exc:
        raise ManifestError(source, schema_errors(exc)) from None
    errors = validate_pod(pod)
    if errors:
        raise ManifestError(source, errors)
    warnings = tuple(ignored_field_warnings(pod))
    return DecodedPod(pod=default_pod(pod), warnings=warnings)


# --- 1. bytes -> one object ---------------------------------------------------------------------

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader that leaves timestamps as strings (sigs.k8s.io/yaml does the same)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def _load(data: bytes, *, source: str) -> dict[str, object]:
    def fail(detail: str) -> ManifestError:
        return ManifestError(source, [FieldError(ErrorType.INVALID, "", detail)])

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"manifest is not UTF-8: {exc}") from None
    documents: list[object]
    try:
        documents = [json.loads(text)] if text.lstrip().startswith("{") else []
    except ValueError:
        documents = []
    if not documents:
        try:
            documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
        except yaml.YAMLError as exc:
            raise fail(f"error parsing YAML: {_yaml_problem(exc)}") from None
    if not documents:
        raise fail("manifest is empty: expected one Pod")
    if len(documents) > 1:
        raise fail(f"found {len(documents)} YAML documents: a manifest holds exactly one Pod")
    (document,) = documents
    if not isinstance(document, dict):
        kind = "list" if isinstance(document, list) else type(document).__name__
        raise fail(f"manifest must be a YAML or JSON object (a Pod), not a {kind}")
    jsonable = _jsonable(document)
    assert isinstance(jsonable, dict)
    return jsonable


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _jsonable(value: object) -> object:
    """YAML's richer data as the JSON the API decodes: string keys, no Python-only types."""
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _json_key(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def _check_type_meta(obj: Mapping[str, object]) -> list[FieldError]:
    errors: list[FieldError] = []
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind is None:
        errors.append(FieldError(ErrorType.REQUIRED, "kind", ""))
    elif kind != "Pod":
        errors.append(FieldError(ErrorType.INVALID, "kind", "minikubelet runs Pods only", kind))
    if api_version is None:
        errors.append(FieldError(ErrorType.REQUIRED, "apiVersion", ""))
    elif api_version != "v1":
        errors.append(_not_supported("apiVersion", api_version, ["v1"]))
    return errors


# --- 2. schema errors ---------------------------------------------------------------------------

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
_MAP_FIELDS: Final = frozenset({"labels", "annotations", "limits", "requests"})
_PORT_FIELDS: Final = frozenset({"containerPort", "hostPort", "port"})


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
            out.append(_invalid(render_path(loc), errors[0]["input"], f"must be {expected}"))
        else:
            out.extend(_schema_error(loc, e) for e in errors)
    return out


def _schema_error(loc: tuple[int | str, ...], error: ErrorDetails) -> FieldError:
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    path = render_path(loc)
    leaf = loc[-1] if loc else ""
    if kind == "missing":
        return FieldError(ErrorType.REQUIRED, path, "")
    if kind == "extra_forbidden":
        return FieldError(ErrorType.UNKNOWN_FIELD, render_path(loc[:-1]), _unknown(loc))
    if kind in ("greater_than_equal", "less_than_equal") and leaf in _PORT_FIELDS:
        return _invalid(path, value, "must be between 1 and 65535, inclusive")
    bounds = {
        "greater_than_equal": ("ge", "greater than or equal to"),
        "less_than_equal": ("le", "less than or equal to"),
        "greater_than": ("gt", "greater than"),
        "less_than": ("lt", "less than"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return _invalid(path, value, f"must be {words} {ctx.get(key)}")
    if kind == "literal_error":
        supported = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return _not_supported(path, value, supported)
    if kind in _TYPE_NAMES:
        return _invalid(path, value, f"must be {_TYPE_NAMES[kind]}")
    message = error["msg"]
    return _invalid(path, value, message[:1].lower() + message[1:])


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


# --- 3. the rules a schema cannot say -----------------------------------------------------------


def validate_pod(pod: Pod) -> list[FieldError]:
    """Every cross-field problem in a schema-valid Pod, in the API server's order."""
    errs = _validate_metadata(pod.metadata)
    spec = pod.spec
    volumes, volume_errs = _validate_volumes(spec.volumes or [])
    errs += volume_errs
    grace = spec.termination_grace_period_seconds
    if not spec.containers:
        errs.append(FieldError(ErrorType.REQUIRED, "spec.containers", ""))
    names: set[str] = set()
    for i, ctr in enumerate(spec.containers):
        path = f"spec.containers[{i}]"
        errs += _validate_container_common(ctr, path=path, volumes=volumes)
        if ctr.name in names:
            errs.append(FieldError(ErrorType.DUPLICATE, f"{path}.name", "", ctr.name))
        names.add(ctr.name)
        errs += _validate_probes_and_lifecycle(ctr, path=path, grace=grace)
        if ctr.restart_policy is not None:
            errs.append(
                _forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")
            )
    errs += _host_port_conflicts(spec.containers, path="spec.containers")
    for i, ctr in enumerate(spec.init_containers or []):
        path = f"spec.initContainers[{i}]"
        errs += _validate_container_common(ctr, path=path, volumes=volumes)
        if ctr.name in names:
            errs.append(FieldError(ErrorType.DUPLICATE, f"{path}.name", "", ctr.name))
        elif ctr.name:
            names.add(ctr.name)
        if ctr.is_sidecar:
            errs += _validate_probes_and_lifecycle(ctr, path=path, grace=grace)
        else:
            for wire in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if getattr(ctr, _attr(Container, wire)) is not None:
                    errs.append(
                        _forbidden(
                            f"{path}.{wire}",
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    errs += _host_port_conflicts(spec.init_containers or [], path="spec.initContainers")
    if spec.runtime_class_name is not None and spec.runtime_class_name not in RUNTIME_CLASSES:
        errs.append(
            _not_supported("spec.runtimeClassName", spec.runtime_class_name, RUNTIME_CLASSES)
        )
    errs += _static_pod_references(spec)
    return errs


def _validate_metadata(meta: ObjectMeta) -> list[FieldError]:
    errs: list[FieldError] = []
    if not meta.name:
        errs.append(
            FieldError(ErrorType.REQUIRED, "metadata.name", "name or generateName is required")
        )
    else:
        errs += [_invalid("metadata.name", meta.name, m) for m in dns1123_subdomain(meta.name)]
    if meta.namespace is not None:
        if not meta.namespace:
            errs.append(FieldError(ErrorType.REQUIRED, "metadata.namespace", ""))
        ns = meta.namespace
        errs += [_invalid("metadata.namespace", ns, m) for m in dns1123_label(ns) if ns]
    for key, val in sorted((meta.labels or {}).items()):
        errs += [_invalid("metadata.labels", key, m) for m in qualified_name(key)]
        errs += [_invalid("metadata.labels", val, m) for m in label_value(val)]
    for key in sorted(meta.annotations or {}):
        errs += [_invalid("metadata.annotations", key, m) for m in qualified_name(key.lower())]
    return errs


def _validate_volumes(volumes: Sequence[Volume]) -> tuple[dict[str, Volume], list[FieldError]]:
    """(the volumes mounts may name, errors). As upstream, an invalid volume is not mountable."""
    valid: dict[str, Volume] = {}
    errs: list[FieldError] = []
    for i, vol in enumerate(volumes):
        path = f"spec.volumes[{i}]"
        el: list[FieldError] = []
        sources = [w for w in _VOLUME_SOURCES if getattr(vol, _attr(Volume, w)) is not None]
        for extra in sources[1:]:
            el.append(_forbidden(f"{path}.{extra}", "may not specify more than 1 volume type"))
        if not sources:
            el.append(FieldError(ErrorType.REQUIRED, path, "must specify a volume type"))
        if vol.empty_dir is not None and vol.empty_dir.size_limit is not None:
            limit_path = f"{path}.emptyDir.sizeLimit"
            try:
                if parse_quantity(vol.empty_dir.size_limit) < 0:
                    el.append(
                        _forbidden(limit_path, "SizeLimit field must be a valid resource quantity")
                    )
            except ValueError as exc:
                el.append(_invalid(limit_path, vol.empty_dir.size_limit, str(exc)))
        if vol.host_path is not None:
            host_path = f"{path}.hostPath.path"
            if not vol.host_path.path:
                el.append(FieldError(ErrorType.REQUIRED, host_path, ""))
            elif ".." in vol.host_path.path.split("/"):
                el.append(_invalid(host_path, vol.host_path.path, "must not contain '..'"))
        name_path = f"{path}.name"
        if not vol.name:
            el.append(FieldError(ErrorType.REQUIRED, name_path, ""))
        else:
            el += [_invalid(name_path, vol.name, m) for m in dns1123_label(vol.name)]
        if vol.name in valid:
            el.append(FieldError(ErrorType.DUPLICATE, name_path, "", vol.name))
        if el:
            errs += el
        else:
            valid[vol.name] = vol
        # Beyond the API: sources a static pod may not use, or minikubelet cannot back.
        if sources and sources[0] in _UNSUPPORTED_VOLUMES:
            errs.append(_not_supported(path, sources[0], ["emptyDir", "hostPath"]))
    return valid, errs


# Wire names of Volume's sources, in validateVolumeSource's order.
_VOLUME_SOURCES: Final = (
    "emptyDir",
    "hostPath",
    "secret",
    "nfs",
    "persistentVolumeClaim",
    "downwardAPI",
    "configMap",
    "projected",
    "csi",
    "ephemeral",
    "image",
)
# Sources that need no API object but that minikubelet does not implement.
_UNSUPPORTED_VOLUMES: Final = frozenset({"nfs", "downwardAPI", "image"})


def _validate_container_common(
    ctr: Container, *, path: str, volumes: Mapping[str, Volume]
) -> list[FieldError]:
    errs: list[FieldError] = []
    if not ctr.name:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.name", ""))
    else:
        errs += [_invalid(f"{path}.name", ctr.name, m) for m in dns1123_label(ctr.name)]
    errs += _validate_ports(ctr, path=f"{path}.ports")
    errs += _validate_env(ctr.env or [], path=f"{path}.env")
    errs += _validate_volume_mounts(ctr, path=f"{path}.volumeMounts", volumes=volumes)
    if ctr.resources is not None:
        errs += _validate_resources(ctr.resources, path=f"{path}.resources")
    return errs


def _validate_ports(ctr: Container, *, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ctr.ports or []):
        if port.name:
            msgs = port_name(port.name)
            errs += [_invalid(f"{path}[{i}].name", port.name, m) for m in msgs]
            if not msgs and port.name in names:
                errs.append(FieldError(ErrorType.DUPLICATE, f"{path}[{i}].name", "", port.name))
            names.add(port.name)
    return errs


def _host_port_conflicts(containers: Sequence[Container], *, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, ctr in enumerate(containers):
        for pi, port in enumerate(ctr.ports or []):
            if not port.host_port:
                continue
            key = f"{port.host_ip or ''}/{port.protocol}/{port.host_port}"
            if key in seen:
                errs.append(
                    FieldError(ErrorType.DUPLICATE, f"{path}[{ci}].ports[{pi}].hostPort", "", key)
                )
            seen.add(key)
    return errs


# --- env ----------------------------------------------------------------------------------------

_ENV_FIELD_PATHS: Final = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
# ConvertDownwardAPIFieldLabel: what a v1 fieldPath may name at all.
_CONVERTIBLE_FIELD_PATHS: Final = frozenset(
    {
        *_ENV_FIELD_PATHS,
        "metadata.annotations",
        "metadata.labels",
        "spec.restartPolicy",
        "spec.schedulerName",
        "status.phase",
        "spec.host",
    }
)
_RESOURCE_FIELD_PATHS: Final = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_BYTE_DIVISORS: Final = frozenset(
    {"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}
)


def _validate_env(env: Sequence[EnvVar], *, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        at = f"{path}[{i}]"
        if not var.name:
            errs.append(FieldError(ErrorType.REQUIRED, f"{at}.name", ""))
        else:
            errs += [_invalid(f"{at}.name", var.name, m) for m in env_var_name(var.name)]
        errs += _validate_env_value_from(var, path=f"{at}.valueFrom")
    return errs


def _validate_env_value_from(var: EnvVar, *, path: str) -> list[FieldError]:
    source = var.value_from
    if source is None:
        return []
    errs: list[FieldError] = []
    count = 0
    if source.field_ref is not None:
        count += 1
        errs += _validate_field_ref(source.field_ref, path=f"{path}.fieldRef")
    if source.resource_field_ref is not None:
        count += 1
        errs += _validate_resource_field_ref(source.resource_field_ref, f"{path}.resourceFieldRef")
    count += source.config_map_key_ref is not None
    count += source.secret_key_ref is not None
    if count == 0:
        errs.append(
            _invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif var.value:
        errs.append(_invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(_invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _validate_field_ref(ref: ObjectFieldSelector, *, path: str) -> list[FieldError]:
    """validateObjectFieldSelector with the env expressions."""
    if not ref.api_version:
        return [FieldError(ErrorType.REQUIRED, f"{path}.apiVersion", "")]
    if not ref.field_path:
        return [FieldError(ErrorType.REQUIRED, f"{path}.fieldPath", "")]
    fp = ref.field_path

    def conversion(problem: str) -> list[FieldError]:
        return [_invalid(f"{path}.fieldPath", fp, f"error converting fieldPath: {problem}")]

    if ref.api_version != "v1":
        return conversion(f"unsupported pod version: {ref.api_version}")
    subscripted = split_subscripted_path(fp)
    if subscripted is not None:
        head, key = subscripted
        if head == "metadata.annotations":
            return [_invalid(path, key.lower(), m) for m in qualified_name(key.lower())]
        if head == "metadata.labels":
            return [_invalid(path, key, m) for m in qualified_name(key)]
        return conversion(f"field label does not support subscript: {fp}")
    if fp not in _CONVERTIBLE_FIELD_PATHS:
        return conversion(f"field label not supported: {fp}")
    internal = "spec.nodeName" if fp == "spec.host" else fp
    if internal not in _ENV_FIELD_PATHS:
        return [_not_supported(f"{path}.fieldPath", internal, _ENV_FIELD_PATHS)]
    return []


def _validate_resource_field_ref(ref: ResourceFieldSelector, path: str) -> list[FieldError]:
    """validateContainerResourceFieldSelector + validateContainerResourceDivisor."""
    errs: list[FieldError] = []
    resource = ref.resource
    if not resource:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.resource", ""))
    elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(
        ("limits.hugepages-", "requests.hugepages-")
    ):
        errs.append(_not_supported(f"{path}.resource", resource, _RESOURCE_FIELD_PATHS))
    if ref.divisor is None:
        return errs
    divisor_path = f"{path}.divisor"
    try:
        if parse_quantity(ref.divisor) == 0:
            return errs
        divisor = canonical_quantity(ref.divisor)
    except ValueError as exc:
        return [*errs, _invalid(divisor_path, ref.divisor, str(exc))]
    units = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
    if resource in ("limits.cpu", "requests.cpu") and divisor not in ("1m", "1"):
        errs.append(
            _invalid(
                divisor_path,
                resource,
                "only divisor's values 1m and 1 are supported with the cpu resource",
            )
        )
    elif resource in ("limits.memory", "requests.memory") and divisor not in _BYTE_DIVISORS:
        detail = f"only divisor's values {units} are supported with the memory resource"
        errs.append(_invalid(divisor_path, resource, detail))
    elif resource.endswith(".ephemeral-storage") and divisor not in _BYTE_DIVISORS:
        what = "local ephemeral storage"
        detail = f"only divisor's values {units} are supported with the {what} resource"
        errs.append(_invalid(divisor_path, resource, detail))
    elif ".hugepages-" in resource and divisor not in _BYTE_DIVISORS:
        detail = f"only divisor's values {units} are supported with the hugepages resource"
        errs.append(_invalid(divisor_path, resource, detail))
    return errs


# --- mounts and resources -----------------------------------------------------------------------


def _validate_volume_mounts(
    ctr: Container, *, path: str, volumes: Mapping[str, Volume]
) -> list[FieldError]:
    errs: list[FieldError] = []
    mount_points: set[str] = set()
    for i, mount in enumerate(ctr.volume_mounts or []):
        at = f"{path}[{i}]"
        if not mount.name:
            errs.append(FieldError(ErrorType.REQUIRED, f"{at}.name", ""))
        if mount.name not in volumes:
            errs.append(FieldError(ErrorType.NOT_FOUND, f"{at}.name", "", mount.name))
        mount_path = f"{at}.mountPath"
        if not mount.mount_path:
            errs.append(FieldError(ErrorType.REQUIRED, mount_path, ""))
        elif not posixpath.isabs(mount.mount_path):
            errs.append(_invalid(mount_path, mount.mount_path, "must be an absolute path"))
        if mount.mount_path in mount_points:
            errs.append(_invalid(mount_path, mount.mount_path, "must be unique"))
        mount_points.add(mount.mount_path)
        if mount.sub_path:
            sub_path = f"{at}.subPath"
            if posixpath.isabs(mount.sub_path):
                errs.append(_invalid(sub_path, mount.sub_path, "must be a relative path"))
            if ".." in mount.sub_path.split("/"):
                errs.append(_invalid(sub_path, mount.sub_path, "must not contain '..'"))
    return errs


_STANDARD_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})


def _validate_resources(req: ResourceRequirements, *, path: str) -> list[FieldError]:
    """validateResourceRequirements for a container: names, quantities, requests <= limits."""
    errs: list[FieldError] = []
    limits: dict[str, Decimal] = {}
    hugepages = cpu_or_memory = False
    for kind, written in (("limits", req.limits or {}), ("requests", req.requests or {})):
        for name, raw in sorted(written.items()):
            at = f"{path}.{kind}[{name}]"
            is_hugepages = name.startswith("hugepages-")
            hugepages |= is_hugepages
            cpu_or_memory |= name in ("cpu", "memory")
            if "/" in name:
                errs.append(_forbidden(at, "extended resources are not supported by minikubelet"))
            elif name not in _STANDARD_RESOURCES and not is_hugepages:
                errs.append(_invalid(at, name, "must be a standard resource for containers"))
            try:
                amount = parse_quantity(raw)
            except ValueError as exc:
                errs.append(_invalid(at, raw, str(exc)))
                continue
            if amount < 0:
                errs.append(
                    _invalid(at, canonical_quantity(raw), "must be greater than or equal to 0")
                )
            if kind == "limits":
                limits[name] = amount
                continue
            shown = canonical_quantity(raw)
            if name in limits:
                limit = canonical_quantity((req.limits or {})[name])
                if is_hugepages and amount != limits[name]:
                    detail = f"must be equal to {name} limit of {limit}"
                    errs.append(_invalid(f"{path}.requests", shown, detail))
                elif amount > limits[name]:
                    detail = f"must be less than or equal to {name} limit of {limit}"
                    errs.append(_invalid(f"{path}.requests", shown, detail))
            elif is_hugepages and name not in (req.limits or {}):
                errs.append(
                    FieldError(
                        ErrorType.REQUIRED,
                        f"{path}.limits",
                        "Limit must be set for non overcommitable resources",
                    )
                )
    if hugepages and not cpu_or_memory:
        errs.append(_forbidden(path, "HugePages require cpu or memory"))
    return errs


# --- probes and lifecycle -----------------------------------------------------------------------


def _validate_probes_and_lifecycle(ctr: Container, *, path: str, grace: int) -> list[FieldError]:
    errs: list[FieldError] = []
    if ctr.lifecycle is not None:
        for wire, handler in (
            ("postStart", ctr.lifecycle.post_start),
            ("preStop", ctr.lifecycle.pre_stop),
        ):
            if handler is not None:
                errs += _validate_handler(handler, path=f"{path}.lifecycle.{wire}", grace=grace)
    for wire, probe in (
        ("livenessProbe", ctr.liveness_probe),
        ("readinessProbe", ctr.readiness_probe),
        ("startupProbe", ctr.startup_probe),
    ):
        if probe is None:
            continue
        at = f"{path}.{wire}"
        errs += _validate_handler(probe, path=at, grace=grace)
        if wire != "readinessProbe" and probe.success_threshold != 1:
            errs.append(_invalid(f"{at}.successThreshold", probe.success_threshold, "must be 1"))
        if wire == "readinessProbe" and probe.termination_grace_period_seconds is not None:
            errs.append(
                _invalid(
                    f"{at}.terminationGracePeriodSeconds",
                    probe.termination_grace_period_seconds,
                    "must not be set for readinessProbes",
                )
            )
    return errs


def _validate_handler(
    handler: Probe | LifecycleHandler, *, path: str, grace: int
) -> list[FieldError]:
    """validateHandler: exactly one of exec, httpGet, tcpSocket, grpc (probes), sleep (hooks)."""
    errs: list[FieldError] = []
    count = 0

    def one_more(wire: str) -> bool:
        nonlocal count
        if count:
            errs.append(_forbidden(f"{path}.{wire}", "may not specify more than 1 handler type"))
            return False
        count += 1
        return True

    if handler.exec is not None and one_more("exec") and not handler.exec.command:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.exec.command", ""))
    if handler.http_get is not None and one_more("httpGet"):
        errs += _validate_http_get(handler.http_get, path=f"{path}.httpGet")
    if handler.tcp_socket is not None and one_more("tcpSocket"):
        errs += _validate_port_num_or_name(handler.tcp_socket.port, f"{path}.tcpSocket.port")
    if isinstance(handler, Probe) and handler.grpc is not None:
        one_more("grpc")
    if isinstance(handler, LifecycleHandler) and handler.sleep is not None and one_more("sleep"):
        seconds = handler.sleep.seconds
        if seconds < 0 or seconds > grace:
            detail = f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"
            errs.append(_invalid(f"{path}.sleep", seconds, detail))
    if count == 0:
        errs.append(FieldError(ErrorType.REQUIRED, path, "must specify a handler type"))
    return errs


def _validate_http_get(action: HTTPGetAction, *, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not action.path:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.path", ""))
    errs += _validate_port_num_or_name(action.port, f"{path}.port")
    for header in action.http_headers or []:
        errs += [
            _invalid(f"{path}.httpHeaders", header.name, m) for m in http_header_name(header.name)
        ]
    return errs


def _validate_port_num_or_name(port: int | str, path: str) -> list[FieldError]:
    if isinstance(port, int):
        return [_invalid(path, port, m) for m in port_number(port)]
    return [_invalid(path, port, m) for m in port_name(port)]


# --- 4. kubelet: static pods may not reference API objects --------------------------------------


def _static_pod_references(spec: PodSpec) -> list[FieldError]:
    """HasAPIObjectReference, one error per reference instead of kubelet's first."""
    errs: list[FieldError] = []

    def refuse(path: str, resource: str) -> None:
        errs.append(_forbidden(path, f"static pods may not reference {resource}"))

    # serviceAccountName is deliberately not refused (kubelet would): a manifest that names one
    # still runs here, with the "accepted but not acted on" warning, as the issue asks.
    for i, _ in enumerate(_as_list(spec.image_pull_secrets)):
        refuse(f"spec.imagePullSecrets[{i}]", "secrets")
    for group, containers in (
        ("containers", spec.containers),
        ("initContainers", spec.init_containers or []),
    ):
        for ci, ctr in enumerate(containers):
            at = f"spec.{group}[{ci}]"
            for ei, var in enumerate(ctr.env or []):
                if var.value_from is None:
                    continue
                if var.value_from.secret_key_ref is not None:
                    refuse(f"{at}.env[{ei}].valueFrom.secretKeyRef", "secrets")
                if var.value_from.config_map_key_ref is not None:
                    refuse(f"{at}.env[{ei}].valueFrom.configMapKeyRef", "configmaps")
            for ei, source in enumerate(_as_list(ctr.env_from)):
                if isinstance(source, dict) and source.get("secretRef") is not None:
                    refuse(f"{at}.envFrom[{ei}].secretRef", "secrets")
                if isinstance(source, dict) and source.get("configMapRef") is not None:
                    refuse(f"{at}.envFrom[{ei}].configMapRef", "configmaps")
    if _as_list(spec.resource_claims):
        refuse("spec.resourceClaims", "resourceclaims")
    by_source = {
        "configMap": "configmaps (via configmap volumes)",
        "secret": "secrets (via secret volumes)",
        "csi": "csidrivers (via CSI volumes)",
        "persistentVolumeClaim": "persistentvolumeclaims",
        "ephemeral": "persistentvolumeclaims (via ephemeral volumes)",
    }
    projected = {
        "configMap": "configmaps (via projected volumes)",
        "secret": "secrets (via projected volumes)",
        "serviceAccountToken": "serviceaccounts (via projected volumes)",
        "clusterTrustBundle": "clustertrustbundles",
        "podCertificate": "podcertificates",
    }
    for i, vol in enumerate(spec.volumes or []):
        for wire, resource in by_source.items():
            if getattr(vol, _attr(Volume, wire)) is not None:
                refuse(f"spec.volumes[{i}].{wire}", resource)
        if vol.projected is None:
            continue
        sources = vol.projected.get("sources") if isinstance(vol.projected, dict) else None
        for si, item in enumerate(_as_list(sources)):
            for key, resource in projected.items():
                if isinstance(item, dict) and item.get(key) is not None:
                    refuse(f"spec.volumes[{i}].projected.sources[{si}].{key}", resource)
        if not any(
            isinstance(item, dict) and any(item.get(k) is not None for k in projected)
            for item in _as_list(sources)
        ):
            errs.append(_not_supported(f"spec.volumes[{i}]", "projected", ["emptyDir", "hostPath"]))
    return errs


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


# --- 5. defaulting ------------------------------------------------------------------------------


def default_pod(pod: Pod) -> Pod:
    """SetDefaults_Pod/SetDefaults_Container beyond the models' own defaults: requests default
    to limits, imagePullPolicy follows the image tag. ``status`` on input is dropped."""
    spec = pod.spec.model_copy(
        update={
            "containers": [_default_container(c) for c in pod.spec.containers],
            "init_containers": (
                None
                if pod.spec.init_containers is None
                else [_default_container(c) for c in pod.spec.init_containers]
            ),
        }
    )
    return pod.model_copy(update={"spec": spec, "status": None})


def _default_container(ctr: Container) -> Container:
    update: dict[str, Any] = {}
    if ctr.image_pull_policy is None and ctr.image:
        update["image_pull_policy"] = (
            "Always" if image_tag(ctr.image) == "latest" else "IfNotPresent"
        )
    resources = ctr.resources
    if resources is not None and resources.limits:
        requests = dict(resources.requests or {})
        missing = {k: v for k, v in resources.limits.items() if k not in requests}
        if missing:
            update["resources"] = resources.model_copy(update={"requests": requests | missing})
    return ctr.model_copy(update=update) if update else ctr


def image_tag(image: str) -> str:
    """The tag kubelet's ParseImageName reports: ``latest`` when neither tag nor digest is given,
    ``""`` for a digest-only reference."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    _, colon, tag = last.partition(":")
    if colon:
        return tag
    return "" if at else "latest"


# --- warnings -----------------------------------------------------------------------------------


def ignored_field_warnings(model: BaseModel, path: str = "") -> list[str]:
    """``"<path>: is accepted but not acted on by minikubelet"`` for every field that was set
    and that its class lists in ``ignored_fields``, walking nested objects and lists."""
    out: list[str] = []
    ignored = type(model).ignored_fields if isinstance(model, Spec) else frozenset()
    for name, info in type(model).model_fields.items():
        if name not in model.model_fields_set:
            continue
        wire = info.alias or name
        at = f"{path}.{wire}" if path else wire
        value = getattr(model, name)
        if wire in ignored:
            if value is not None:
                out.append(f"{at}: is accepted but not acted on by minikubelet")
            continue
        for sub_path, item in _children(at, value):
            out += ignored_field_warnings(item, sub_path)
    return out


def _children(path: str, value: object) -> Iterable[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, BaseModel):
                yield f"{path}[{i}]", item


# --- Kubernetes' name and format rules (apimachinery/pkg/util/validation) -----------------------

_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT: Final = f"({_QUALIFIED_NAME_FMT})?"
_ENV_VAR_NAME_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_HTTP_HEADER_NAME_FMT: Final = "[-A-Za-z0-9]+"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError, double space before ``or`` included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {listed}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(_DNS1123_LABEL_FMT, value):
        if re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
            errs.append("must not contain dots")
        else:
            msg = (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character"
            )
            errs.append(regex_error(msg, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
        msg = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
        errs.append(regex_error(msg, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def qualified_name(value: str) -> list[str]:
    msg = (
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
        "with an alphanumeric character"
    )
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + regex_error(msg, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            errs.append("prefix part must be non-empty")
        else:
            errs += [f"prefix part {m}" for m in dns1123_subdomain(parts[0])]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append(f"name part {_max_len(63)}")
    if not re.fullmatch(_QUALIFIED_NAME_FMT, name):
        errs.append(
            "name part " + regex_error(msg, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(_LABEL_VALUE_FMT, value):
        msg = (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
        errs.append(regex_error(msg, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def port_name(value: str) -> list[str]:
    """IsValidPortName: an IANA_SVC_NAME."""
    errs = [_max_len(15)] if len(value) > 15 else []
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]


def env_var_name(value: str) -> list[str]:
    """IsEnvVarName (the strict rule: it also holds on clusters with the relaxed one)."""
    errs: list[str] = []
    if not re.fullmatch(_ENV_VAR_NAME_FMT, value):
        msg = (
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit"
        )
        errs.append(regex_error(msg, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def http_header_name(value: str) -> list[str]:
    if re.fullmatch(_HTTP_HEADER_NAME_FMT, value):
        return []
    msg = "a valid HTTP header must consist of alphanumeric characters or '-'"
    return [regex_error(msg, _HTTP_HEADER_NAME_FMT, "X-Header-Name")]


# --- helpers ------------------------------------------------------------------------------------


def _attr(model: type[BaseModel], wire: str) -> str:
    """The Python attribute behind a wire name."""
    for name, info in model.model_fields.items():
        if (info.alias or name) == wire:
            return name
    raise KeyError(wire)


def _invalid(path: str, value: object, detail: str) -> FieldError:
    return FieldError(ErrorType.INVALID, path, detail, value)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, path, detail)


def _not_supported(path: str, value: object, supported: Iterable[str]) -> FieldError:
    listed = ", ".join(json.dumps(s) for s in supported)
    return FieldError(ErrorType.NOT_SUPPORTED, path, f"supported values: {listed}", value)
