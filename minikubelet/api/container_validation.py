"""The rules for one container (validateContainerCommon and what it calls, in its order).

Names, ports, env, volume mounts, resources, securityContext, probes and lifecycle hooks, in
Kubernetes' words (``pkg/apis/core/validation/validation.go``). Single-field ranges (ports,
probe thresholds, user IDs) are checked here with the rules that span fields, so one pass
reports both. ``api.validation`` calls these for every init and regular container.

Beyond the API server, every string that becomes an ``execve`` argument, an environment
variable or a path is held to what the kernel takes: arguments and ``NAME=value`` within
MAX_ARG_STRLEN, all of them together within ARG_MAX, once ``$(VAR)`` is expanded
(``api.env.static_expansion_problems``), and paths within PATH_MAX. HTTP header values may not
hold control characters (Go's client refuses to send them, so kubelet's probe fails every
period). NUL characters are refused earlier, in every string (``api.document``).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

from minikubelet.api.env import split_subscripted_path, static_expansion_problems
from minikubelet.api.errors import ErrorType, FieldError
from minikubelet.api.field import at_least, forbidden, in_range, invalid, not_supported, too_long
from minikubelet.api.model import (
    Container,
    EnvVar,
    HTTPGetAction,
    LifecycleHandler,
    ObjectFieldSelector,
    PodSecurityContext,
    Probe,
    ResourceFieldSelector,
    ResourceRequirements,
    SecurityContext,
    Volume,
)
from minikubelet.api.names import (
    dns1123_label,
    env_var_name,
    http_header_name,
    port_name,
    port_number,
    qualified_name,
)
from minikubelet.api.quantity import canonical_quantity, parse_quantity

MAX_PATH_BYTES: Final = 4095  # PATH_MAX, less the terminating NUL
MAX_ID: Final = 2**31 - 1  # user and group IDs (IsValidUserID, IsValidGroupID)

# Go's httpguts.ValidHeaderFieldValue: no control character but horizontal tab.
_HEADER_VALUE_CONTROLS: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def validate_container_common(
    ctr: Container, *, path: str, volumes: Mapping[str, Volume]
) -> list[FieldError]:
    errs: list[FieldError] = []
    if not ctr.name:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.name", ""))
    else:
        errs += [invalid(f"{path}.name", ctr.name, m) for m in dns1123_label(ctr.name)]
    if ctr.image is not None and ctr.image != ctr.image.strip():
        detail = "must not have leading or trailing whitespace"
        errs.append(invalid(f"{path}.image", ctr.image, detail))
    errs += too_long(f"{path}.workingDir", ctr.working_dir, MAX_PATH_BYTES)
    errs += too_long(f"{path}.terminationMessagePath", ctr.termination_message_path, MAX_PATH_BYTES)
    errs += [
        FieldError(ErrorType.TOO_LONG, f"{path}.{at}", detail)
        for at, detail in static_expansion_problems(ctr)
    ]
    errs += _validate_ports(ctr, path=f"{path}.ports")
    errs += _validate_env(ctr.env or [], path=f"{path}.env")
    errs += _validate_volume_mounts(ctr, path=f"{path}.volumeMounts", volumes=volumes)
    if ctr.resources is not None:
        errs += _validate_resources(ctr.resources, path=f"{path}.resources")
    if ctr.security_context is not None:
        errs += validate_run_as(ctr.security_context, path=f"{path}.securityContext")
    return errs


def _validate_ports(ctr: Container, *, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ctr.ports or []):
        if port.name:
            msgs = port_name(port.name)
            errs += [invalid(f"{path}[{i}].name", port.name, m) for m in msgs]
            if not msgs and port.name in names:
                errs.append(FieldError(ErrorType.DUPLICATE, f"{path}[{i}].name", "", port.name))
            names.add(port.name)
        errs += _validate_port_number(port.container_port, f"{path}[{i}].containerPort")
        if port.host_port:
            errs += _validate_port_number(port.host_port, f"{path}[{i}].hostPort")
        if port.host_ip:
            errs += _validate_ip(port.host_ip, f"{path}[{i}].hostIP")
    return errs


def _validate_ip(value: str, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [
            invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        ]
    return []


def validate_run_as(
    context: SecurityContext | PodSecurityContext, *, path: str
) -> list[FieldError]:
    """runAsUser and runAsGroup, of a container or of the pod: user and group IDs."""
    return [
        *in_range(f"{path}.runAsUser", context.run_as_user, 0, MAX_ID),
        *in_range(f"{path}.runAsGroup", context.run_as_group, 0, MAX_ID),
    ]


def host_port_conflicts(containers: Sequence[Container], *, path: str) -> list[FieldError]:
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
            errs += [invalid(f"{at}.name", var.name, m) for m in env_var_name(var.name)]
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
            invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif var.value:
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _validate_field_ref(ref: ObjectFieldSelector, *, path: str) -> list[FieldError]:
    """validateObjectFieldSelector with the env expressions."""
    if not ref.api_version:
        return [FieldError(ErrorType.REQUIRED, f"{path}.apiVersion", "")]
    if not ref.field_path:
        return [FieldError(ErrorType.REQUIRED, f"{path}.fieldPath", "")]
    fp = ref.field_path

    def conversion(problem: str) -> list[FieldError]:
        return [invalid(f"{path}.fieldPath", fp, f"error converting fieldPath: {problem}")]

    if ref.api_version != "v1":
        return conversion(f"unsupported pod version: {ref.api_version}")
    subscripted = split_subscripted_path(fp)
    if subscripted is not None:
        head, key = subscripted
        if head == "metadata.annotations":
            return [invalid(path, key.lower(), m) for m in qualified_name(key.lower())]
        if head == "metadata.labels":
            return [invalid(path, key, m) for m in qualified_name(key)]
        return conversion(f"field label does not support subscript: {fp}")
    if fp not in _CONVERTIBLE_FIELD_PATHS:
        return conversion(f"field label not supported: {fp}")
    internal = "spec.nodeName" if fp == "spec.host" else fp
    if internal not in _ENV_FIELD_PATHS:
        return [not_supported(f"{path}.fieldPath", internal, _ENV_FIELD_PATHS)]
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
        errs.append(not_supported(f"{path}.resource", resource, _RESOURCE_FIELD_PATHS))
    if ref.divisor is None:
        return errs
    divisor_path = f"{path}.divisor"
    try:
        if parse_quantity(ref.divisor) == 0:
            return errs
        divisor = canonical_quantity(ref.divisor)
    except ValueError as exc:
        return [*errs, invalid(divisor_path, ref.divisor, str(exc))]
    units = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
    if resource in ("limits.cpu", "requests.cpu") and divisor not in ("1m", "1"):
        errs.append(
            invalid(
                divisor_path,
                resource,
                "only divisor's values 1m and 1 are supported with the cpu resource",
            )
        )
    elif resource in ("limits.memory", "requests.memory") and divisor not in _BYTE_DIVISORS:
        detail = f"only divisor's values {units} are supported with the memory resource"
        errs.append(invalid(divisor_path, resource, detail))
    elif resource.endswith(".ephemeral-storage") and divisor not in _BYTE_DIVISORS:
        what = "local ephemeral storage"
        detail = f"only divisor's values {units} are supported with the {what} resource"
        errs.append(invalid(divisor_path, resource, detail))
    elif ".hugepages-" in resource and divisor not in _BYTE_DIVISORS:
        detail = f"only divisor's values {units} are supported with the hugepages resource"
        errs.append(invalid(divisor_path, resource, detail))
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
        errs += too_long(mount_path, mount.mount_path, MAX_PATH_BYTES)
        errs += too_long(f"{at}.subPath", mount.sub_path, MAX_PATH_BYTES)
        if not mount.mount_path:
            errs.append(FieldError(ErrorType.REQUIRED, mount_path, ""))
        elif not posixpath.isabs(mount.mount_path):
            errs.append(invalid(mount_path, mount.mount_path, "must be an absolute path"))
        if mount.mount_path in mount_points:
            errs.append(invalid(mount_path, mount.mount_path, "must be unique"))
        mount_points.add(mount.mount_path)
        if mount.sub_path:
            sub_path = f"{at}.subPath"
            if posixpath.isabs(mount.sub_path):
                errs.append(invalid(sub_path, mount.sub_path, "must be a relative path"))
            if ".." in mount.sub_path.split("/"):
                errs.append(invalid(sub_path, mount.sub_path, "must not contain '..'"))
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
                errs.append(forbidden(at, "extended resources are not supported by minikubelet"))
            elif name not in _STANDARD_RESOURCES and not is_hugepages:
                errs.append(invalid(at, name, "must be a standard resource for containers"))
            try:
                amount = parse_quantity(raw)
            except ValueError as exc:
                errs.append(invalid(at, raw, str(exc)))
                continue
            if amount < 0:
                errs.append(
                    invalid(at, canonical_quantity(raw), "must be greater than or equal to 0")
                )
            if kind == "limits":
                limits[name] = amount
                continue
            shown = canonical_quantity(raw)
            if name in limits:
                limit = canonical_quantity((req.limits or {})[name])
                if is_hugepages and amount != limits[name]:
                    detail = f"must be equal to {name} limit of {limit}"
                    errs.append(invalid(f"{path}.requests", shown, detail))
                elif amount > limits[name]:
                    detail = f"must be less than or equal to {name} limit of {limit}"
                    errs.append(invalid(f"{path}.requests", shown, detail))
            elif is_hugepages and name not in (req.limits or {}):
                errs.append(
                    FieldError(
                        ErrorType.REQUIRED,
                        f"{path}.limits",
                        "Limit must be set for non overcommitable resources",
                    )
                )
    if hugepages and not cpu_or_memory:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


# --- probes and lifecycle -----------------------------------------------------------------------


def validate_probes_and_lifecycle(ctr: Container, *, path: str, grace: int) -> list[FieldError]:
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
        errs += _validate_probe_ranges(probe, path=at)
        success = probe.success_threshold
        if wire != "readinessProbe" and success >= 1 and success != 1:
            errs.append(invalid(f"{at}.successThreshold", success, "must be 1"))
        if wire == "readinessProbe" and probe.termination_grace_period_seconds is not None:
            errs.append(
                invalid(
                    f"{at}.terminationGracePeriodSeconds",
                    probe.termination_grace_period_seconds,
                    "must not be set for readinessProbes",
                )
            )
    return errs


def _validate_probe_ranges(probe: Probe, *, path: str) -> list[FieldError]:
    """validateProbe's single-field checks; every period and threshold is at least 1 here,
    since minikubelet has no zero-means-default step to turn a 0 into something useful."""
    return [
        *at_least(f"{path}.initialDelaySeconds", probe.initial_delay_seconds, 0),
        *at_least(f"{path}.timeoutSeconds", probe.timeout_seconds, 1),
        *at_least(f"{path}.periodSeconds", probe.period_seconds, 1),
        *at_least(f"{path}.successThreshold", probe.success_threshold, 1),
        *at_least(f"{path}.failureThreshold", probe.failure_threshold, 1),
        *at_least(
            f"{path}.terminationGracePeriodSeconds", probe.termination_grace_period_seconds, 1
        ),
    ]


def _validate_handler(
    handler: Probe | LifecycleHandler, *, path: str, grace: int
) -> list[FieldError]:
    """validateHandler: exactly one of exec, httpGet, tcpSocket, grpc (probes), sleep (hooks)."""
    errs: list[FieldError] = []
    count = 0

    def one_more(wire: str) -> bool:
        nonlocal count
        if count:
            errs.append(forbidden(f"{path}.{wire}", "may not specify more than 1 handler type"))
            return False
        count += 1
        return True

    if handler.exec is not None and one_more("exec") and not handler.exec.command:
        errs.append(FieldError(ErrorType.REQUIRED, f"{path}.exec.command", ""))
    if handler.http_get is not None and one_more("httpGet"):
        errs += _validate_http_get(handler.http_get, path=f"{path}.httpGet")
    if handler.tcp_socket is not None and one_more("tcpSocket"):
        errs += _validate_port_num_or_name(handler.tcp_socket.port, f"{path}.tcpSocket.port")
    if isinstance(handler, Probe) and handler.grpc is not None and one_more("grpc"):
        errs += _validate_port_number(handler.grpc.port, f"{path}.grpc.port")
    if isinstance(handler, LifecycleHandler) and handler.sleep is not None and one_more("sleep"):
        seconds = handler.sleep.seconds
        if seconds < 0:
            errs += at_least(f"{path}.sleep.seconds", seconds, 0)
        elif seconds > grace:
            detail = f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"
            errs.append(invalid(f"{path}.sleep", seconds, detail))
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
            invalid(f"{path}.httpHeaders", header.name, m) for m in http_header_name(header.name)
        ]
        if _HEADER_VALUE_CONTROLS.search(header.value):
            detail = "a valid HTTP header value must not contain control characters"
            errs.append(invalid(f"{path}.httpHeaders", header.value, detail))
    return errs


def _validate_port_num_or_name(port: int | str, path: str) -> list[FieldError]:
    if isinstance(port, int):
        return _validate_port_number(port, path)
    return [invalid(path, port, m) for m in port_name(port)]


def _validate_port_number(port: int, path: str) -> list[FieldError]:
    return [invalid(path, port, m) for m in port_number(port)]
