"""Manifest decoding, validation and defaulting: bytes in, a Pod or every problem out.

``decode_pod`` follows kubelet's static-pod path (``pkg/kubelet/config/common.go``): decode one
object, check its type, validate it as the API server would, default it, then refuse what a
static pod may not reference. Each stage reports everything it finds, in Kubernetes' own words
(``pkg/apis/core/validation/validation.go``, ``apimachinery/pkg/util/validation``), as
``FieldError``s with the k8s field path (``spec.containers[0].livenessProbe.periodSeconds``,
map keys as ``resources.limits[cpu]``).

The stages are:
1. YAML or JSON -> one mapping of kind Pod, apiVersion v1 (``api.document``), within bounds
   on size, values, depth and aliases, with every string one the kernel can take. YAML
   timestamps stay strings, as they do in Kubernetes' YAML-to-JSON step.
2. The schema (``api.model``): shape only, that is unknown fields, types, enum values and
   required fields. pydantic's errors become field errors (``api.schema_errors``); an unknown
   field names the object it appears in, with a did-you-mean when a real field is close. A value
   of the wrong type stops the pipeline, as the API server's strict decoding does, so the rules
   below may rely on every field having its declared type. Unknown fields alone do not: the
   object is decoded again without them and the stages below still run, so a typo such as
   ``periodSecond`` is reported together with the manifest's other problems (the API server
   would stop at the typo).
3. ``validate_pod``: single-field ranges (ports, probe periods and thresholds, user IDs, grace
   periods) and the rules across fields, in one pass, so ``containerPort: 70000`` and a
   volumeMount naming a missing volume are reported together, as the API server reports them.
   Per-container rules are in ``api.container_validation``; the name rules in ``api.names``.
   Deliberate departures from the API server: ``image`` is optional (the process runtime
   needs none), a ``mountPath`` and a hostPath ``path`` must be absolute, minikubelet backs
   only emptyDir and hostPath volumes, and strings are held to what the kernel takes (see
   ``api.container_validation``; docs/validation.md lists every limit).
4. kubelet's own static-pod rule (PreventStaticPodAPIReferences): no ServiceAccount, Secret,
   ConfigMap, PVC or ResourceClaim. Reported with the other errors, one per reference.
5. ``default_pod``: SetDefaults_Pod / SetDefaults_Container for what the models cannot default.

Warnings name every real Kubernetes field that was set but that minikubelet does not act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from minikubelet.api.container_validation import (
    MAX_ID,
    MAX_PATH_BYTES,
    host_port_conflicts,
    validate_container_common,
    validate_probes_and_lifecycle,
    validate_run_as,
)
from minikubelet.api.document import load_document
from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.api.field import (
    at_least,
    forbidden,
    in_range,
    invalid,
    not_supported,
    render_path,
    too_long,
)
from minikubelet.api.model import Container, ObjectMeta, Pod, PodSpec, Spec, Volume
from minikubelet.api.names import (
    dns1123_label,
    dns1123_subdomain,
    env_var_name,
    http_header_name,
    label_value,
    port_name,
    port_number,
    qualified_name,
    regex_error,
)
from minikubelet.api.quantity import parse_quantity
from minikubelet.api.schema_errors import schema_errors

# Besides this module's own API: the name rules (api.names) and the schema-error translation
# (api.schema_errors, api.field), so that callers may import every validation rule from here.
__all__ = [
    "RUNTIME_CLASSES",
    "DecodedPod",
    "decode_pod",
    "default_pod",
    "dns1123_label",
    "dns1123_subdomain",
    "env_var_name",
    "http_header_name",
    "ignored_field_warnings",
    "image_tag",
    "label_value",
    "port_name",
    "port_number",
    "qualified_name",
    "regex_error",
    "render_path",
    "schema_errors",
    "validate_pod",
]

RUNTIME_CLASSES: Final = ("containerd", "podman", "process")
MAX_REPORTED: Final = 100  # errors listed per manifest; the rest are counted
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024  # TotalAnnotationSizeLimitB


@dataclass(frozen=True, slots=True)
class DecodedPod:
    pod: Pod  # defaulted and validated
    warnings: tuple[
        str, ...
    ]  # one per real-but-unused field: "spec.affinity: ..." (no file prefix)


def decode_pod(data: bytes, *, source: str) -> DecodedPod:
    """YAML or JSON bytes -> a defaulted, validated Pod. Raises ManifestError with every problem
    (at most MAX_REPORTED of them), each FieldError's path relative to the object; ``source``
    names the file in messages."""
    document = load_document(data, source=source)
    obj = document.value
    type_errors = _check_type_meta(obj)
    if type_errors:
        raise _manifest_error(source, [*document.errors, *type_errors])
    unknown: list[FieldError] = []
    try:
        pod = Pod.model_validate_json(json.dumps(obj))
    except ValidationError as exc:
        # Unknown fields alone do not stop here (the API server would): without them the
        # manifest may still decode, and then its other problems are reported in the same go.
        extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
        if len(extra) != len(exc.errors()):
            raise _manifest_error(source, [*document.errors, *schema_errors(exc)]) from None
        unknown = schema_errors(exc)
        try:
            pod = Pod.model_validate_json(json.dumps(_without(obj, extra)))
        except ValidationError:
            raise _manifest_error(source, [*document.errors, *unknown]) from None
    errors = [*document.errors, *unknown, *validate_pod(pod)]
    if errors:
        raise _manifest_error(source, errors)
    warnings = tuple(ignored_field_warnings(pod))
    return DecodedPod(pod=default_pod(pod), warnings=warnings)


def _manifest_error(source: str, errors: list[FieldError]) -> ManifestError:
    """Every error, up to MAX_REPORTED: a manifest of ten thousand bad values is one problem
    to its author and must not become ten thousand log lines."""
    if len(errors) <= MAX_REPORTED:
        return ManifestError(source, errors)
    more = len(errors) - MAX_REPORTED
    summary = FieldError(ErrorType.TOO_MANY, "", f"{more} more errors not shown")
    return ManifestError(source, [*errors[:MAX_REPORTED], summary])


def _without(obj: dict[str, object], locations: list[tuple[int | str, ...]]) -> object:
    """A deep copy of ``obj`` with the keys at ``locations`` (pydantic locs) removed."""
    copy = json.loads(json.dumps(obj))
    for loc in locations:
        node = copy
        for step in loc[:-1]:
            node = node[step]
        if isinstance(node, dict):
            node.pop(str(loc[-1]), None)
    return copy


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
        errors.append(not_supported("apiVersion", api_version, ["v1"]))
    return errors


# --- 3. ranges, and the rules a schema cannot say ------------------------------------------------


def validate_pod(pod: Pod) -> list[FieldError]:
    """Every problem in a schema-valid Pod, single-field ranges and rules across fields alike,
    in the API server's order."""
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
        errs += validate_container_common(ctr, path=path, volumes=volumes)
        if ctr.name in names:
            errs.append(FieldError(ErrorType.DUPLICATE, f"{path}.name", "", ctr.name))
        names.add(ctr.name)
        errs += validate_probes_and_lifecycle(ctr, path=path, grace=grace)
        if ctr.restart_policy is not None:
            errs.append(
                forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")
            )
    errs += host_port_conflicts(spec.containers, path="spec.containers")
    for i, ctr in enumerate(spec.init_containers or []):
        path = f"spec.initContainers[{i}]"
        errs += validate_container_common(ctr, path=path, volumes=volumes)
        if ctr.name in names:
            errs.append(FieldError(ErrorType.DUPLICATE, f"{path}.name", "", ctr.name))
        elif ctr.name:
            names.add(ctr.name)
        if ctr.is_sidecar:
            errs += validate_probes_and_lifecycle(ctr, path=path, grace=grace)
        else:
            for wire in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if getattr(ctr, _attr(Container, wire)) is not None:
                    errs.append(
                        forbidden(
                            f"{path}.{wire}",
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    errs += host_port_conflicts(spec.init_containers or [], path="spec.initContainers")
    errs += at_least("spec.terminationGracePeriodSeconds", grace, 0)
    deadline = spec.active_deadline_seconds
    errs += in_range("spec.activeDeadlineSeconds", deadline, 1, 2**31 - 1)
    if spec.node_name:
        node = spec.node_name
        errs += [invalid("spec.nodeName", node, m) for m in dns1123_subdomain(node)]
    if spec.security_context is not None:
        context = spec.security_context
        errs += validate_run_as(context, path="spec.securityContext")
        errs += in_range("spec.securityContext.fsGroup", context.fs_group, 0, MAX_ID)
        for i, gid in enumerate(context.supplemental_groups or []):
            errs += in_range(f"spec.securityContext.supplementalGroups[{i}]", gid, 0, MAX_ID)
    if spec.runtime_class_name is not None and spec.runtime_class_name not in RUNTIME_CLASSES:
        errs.append(
            not_supported("spec.runtimeClassName", spec.runtime_class_name, RUNTIME_CLASSES)
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
        errs += [invalid("metadata.name", meta.name, m) for m in dns1123_subdomain(meta.name)]
    if meta.namespace is not None:
        if not meta.namespace:
            errs.append(FieldError(ErrorType.REQUIRED, "metadata.namespace", ""))
        ns = meta.namespace
        errs += [invalid("metadata.namespace", ns, m) for m in dns1123_label(ns) if ns]
    for key, val in sorted((meta.labels or {}).items()):
        errs += [invalid("metadata.labels", key, m) for m in qualified_name(key)]
        errs += [invalid("metadata.labels", val, m) for m in label_value(val)]
    for key in sorted(meta.annotations or {}):
        errs += [invalid("metadata.annotations", key, m) for m in qualified_name(key.lower())]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in (meta.annotations or {}).items())
    if size > MAX_ANNOTATIONS_BYTES:
        detail = f"may not be more than {MAX_ANNOTATIONS_BYTES} bytes"
        errs.append(FieldError(ErrorType.TOO_LONG, "metadata.annotations", detail))
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
            el.append(forbidden(f"{path}.{extra}", "may not specify more than 1 volume type"))
        if not sources:
            el.append(FieldError(ErrorType.REQUIRED, path, "must specify a volume type"))
        if vol.empty_dir is not None and vol.empty_dir.size_limit is not None:
            limit_path = f"{path}.emptyDir.sizeLimit"
            try:
                if parse_quantity(vol.empty_dir.size_limit) < 0:
                    el.append(
                        forbidden(limit_path, "SizeLimit field must be a valid resource quantity")
                    )
            except ValueError as exc:
                el.append(invalid(limit_path, vol.empty_dir.size_limit, str(exc)))
        if vol.host_path is not None:
            host_path = f"{path}.hostPath.path"
            if not vol.host_path.path:
                el.append(FieldError(ErrorType.REQUIRED, host_path, ""))
            elif ".." in vol.host_path.path.split("/"):
                el.append(invalid(host_path, vol.host_path.path, "must not contain '..'"))
            elif not vol.host_path.path.startswith("/"):
                el.append(invalid(host_path, vol.host_path.path, "must be an absolute path"))
            el += too_long(host_path, vol.host_path.path, MAX_PATH_BYTES)
        name_path = f"{path}.name"
        if not vol.name:
            el.append(FieldError(ErrorType.REQUIRED, name_path, ""))
        else:
            el += [invalid(name_path, vol.name, m) for m in dns1123_label(vol.name)]
        if vol.name in valid:
            el.append(FieldError(ErrorType.DUPLICATE, name_path, "", vol.name))
        if el:
            errs += el
        else:
            valid[vol.name] = vol
        # Beyond the API: sources a static pod may not use, or minikubelet cannot back.
        if sources and sources[0] in _UNSUPPORTED_VOLUMES:
            errs.append(not_supported(path, sources[0], ["emptyDir", "hostPath"]))
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


# --- 4. kubelet: static pods may not reference API objects --------------------------------------


def _static_pod_references(spec: PodSpec) -> list[FieldError]:
    """HasAPIObjectReference, one error per reference instead of kubelet's first."""
    errs: list[FieldError] = []

    def refuse(path: str, resource: str) -> None:
        errs.append(forbidden(path, f"static pods may not reference {resource}"))

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
            errs.append(not_supported(f"spec.volumes[{i}]", "projected", ["emptyDir", "hostPath"]))
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


# --- helpers ------------------------------------------------------------------------------------


def _attr(model: type[BaseModel], wire: str) -> str:
    """The Python attribute behind a wire name."""
    for name, info in model.model_fields.items():
        if (info.alias or name) == wire:
            return name
    raise KeyError(wire)
