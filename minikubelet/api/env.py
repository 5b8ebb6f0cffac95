"""A container's environment, resolved and expanded as kubelet does it.

kubelet builds a container's environment in ``makeEnvironmentVariables``
(``pkg/kubelet/kubelet_pods.go``): ``env`` in declared order, each literal ``value`` expanded
against the variables defined before it (and the service variables, which a single node has
none of), each ``valueFrom`` resolved from the pod (``fieldRef``) or the container's resources
(``resourceFieldRef``, with node allocatable standing in for a missing limit). A later entry
with the same name replaces an earlier one. ``envFrom`` is accepted but not acted on, and
ConfigMap/Secret references are rejected by validation before a pod gets here.

``command`` and ``args`` are then expanded against the full result
(``ExpandContainerCommandAndArgs``); exec probes only see the static ``value`` strings
(``ExpandContainerCommandOnlyStatic``). Expansion itself is ``expand``, a port of
``third_party/forked/golang/expansion/expand.go``: ``$(VAR)`` is replaced, ``$$`` is a literal
``$``, and an undefined or unterminated reference is left as written.

Failures raise ``ContainerConfigError``: kubelet reports them as CreateContainerConfigError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from minikubelet.api.errors import ContainerConfigError
from minikubelet.api.model import (
    Container,
    EnvVar,
    ObjectFieldSelector,
    ObjectMeta,
    PodSpec,
    ResourceFieldSelector,
)
from minikubelet.api.quantity import milli_value, parse_quantity, value

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def expand(text: str, lookup: Mapping[str, str]) -> str:
    """Replace ``$(VAR)`` with ``lookup[VAR]``; ``$$`` is ``$``; anything else stays as is."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _try_read_variable_name(text[cursor + 1 :])
            if is_var:
                out.append(lookup.get(read, f"$({read})"))
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _try_read_variable_name(rest: str) -> tuple[str, bool, int]:
    """(text to emit or variable name, whether it is a variable, characters consumed)."""
    if rest[0] == _OPERATOR:  # "$$": an escaped operator
        return rest[0], False, 1
    if rest[0] == _OPENER:
        closer = rest.find(_CLOSER, 1)
        if closer != -1:
            return rest[1:closer], True, closer + 1
        return _OPERATOR + _OPENER, False, 1  # unterminated: keep "$(" and scan on
    return _OPERATOR + rest[0], False, 1  # "$x" is not a reference


def split_subscripted_path(field_path: str) -> tuple[str, str] | None:
    """``metadata.labels['app']`` -> ``("metadata.labels", "app")`` (SplitMaybeSubscriptedPath)."""
    if not field_path.endswith("']"):
        return None
    head, sep, subscript = field_path[: -len("']")].partition("['")
    if not sep or not head:
        return None
    return head, subscript


def resolve_env(
    *,
    pod_metadata: ObjectMeta,
    spec: PodSpec,
    container: Container,
    node_name: str,
    host_ip: str,
    pod_ip: str,
    host_ips: Sequence[str] = (),
    pod_ips: Sequence[str] = (),
    allocatable: Mapping[str, Decimal] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment, one ``(name, value)`` per distinct name, first-declared order.

    ``pod_metadata`` is the pod's final metadata (full static-pod name, namespace, UID).
    ``allocatable`` (``cpu``, ``memory``, ``ephemeral-storage``, ``hugepages-*``) stands in
    for limits the container does not set, as kubelet's defaultPodLimitsForDownwardAPI does.
    """
    resolved: dict[str, str] = {}
    for var in container.env or []:
        if var.value:
            runtime_value = expand(var.value, resolved)
        elif var.value_from is not None:
            source = var.value_from
            if source.field_ref is not None:
                runtime_value = _field_ref_value(
                    source.field_ref,
                    metadata=pod_metadata,
                    spec=spec,
                    node_name=node_name,
                    host_ips=tuple(host_ips) or (host_ip,),
                    pod_ips=tuple(pod_ips) or (pod_ip,),
                )
            elif source.resource_field_ref is not None:
                runtime_value = _resource_field_ref_value(
                    source.resource_field_ref,
                    spec=spec,
                    container=container,
                    allocatable=allocatable or {},
                )
            else:
                raise ContainerConfigError(
                    f"env {var.name!r}: only fieldRef and resourceFieldRef are supported"
                )
        else:
            runtime_value = ""
        resolved[var.name] = runtime_value
    return list(resolved.items())


def expand_command(
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    *,
    env: Iterable[tuple[str, str]] | Mapping[str, str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ExpandContainerCommandAndArgs: ``$(VAR)`` in command and args from the resolved env."""
    lookup = dict(env.items() if isinstance(env, Mapping) else env)
    return (
        tuple(expand(part, lookup) for part in command or ()),
        tuple(expand(part, lookup) for part in args or ()),
    )


def expand_command_only_static(command: Sequence[str] | None, env: Sequence[EnvVar]) -> list[str]:
    """ExpandContainerCommandOnlyStatic (exec probes): only literal ``value`` strings count;
    a ``valueFrom`` variable expands to the empty string."""
    lookup = {var.name: var.value or "" for var in env}
    return [expand(part, lookup) for part in command or ()]


# --- downward API -------------------------------------------------------------------------------


def _field_ref_value(
    selector: ObjectFieldSelector,
    *,
    metadata: ObjectMeta,
    spec: PodSpec,
    node_name: str,
    host_ips: tuple[str, ...],
    pod_ips: tuple[str, ...],
) -> str:
    """podFieldSelectorRuntimeValue + fieldpath.ExtractFieldPathAsString."""
    path = selector.field_path
    if path == "spec.host":  # the v1 conversion's old name
        path = "spec.nodeName"
    subscripted = split_subscripted_path(path)
    if subscripted is not None:
        head, key = subscripted
        if head == "metadata.annotations":
            return (metadata.annotations or {}).get(key, "")
        if head == "metadata.labels":
            return (metadata.labels or {}).get(key, "")
        raise ContainerConfigError(f"fieldPath {path!r} does not support subscript")
    service_account = spec.service_account_name
    simple: dict[str, str] = {
        "metadata.name": metadata.name or "",
        "metadata.namespace": metadata.namespace or "default",
        "metadata.uid": metadata.uid or "",
        "metadata.labels": _format_map(metadata.labels or {}),
        "metadata.annotations": _format_map(metadata.annotations or {}),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": service_account if isinstance(service_account, str) else "",
        "spec.restartPolicy": spec.restart_policy,
        "status.hostIP": host_ips[0],
        "status.hostIPs": ",".join(host_ips),
        "status.podIP": pod_ips[0],
        "status.podIPs": ",".join(pod_ips),
    }
    if path in simple:
        return simple[path]
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def _format_map(values: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: ``key="value"`` lines in key order."""
    return "\n".join(f'{key}="{_go_quote(values[key])}"' for key in sorted(values))


def _go_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def _resource_field_ref_value(
    selector: ResourceFieldSelector,
    *,
    spec: PodSpec,
    container: Container,
    allocatable: Mapping[str, Decimal],
) -> str:
    """ExtractContainerResourceValue over limits defaulted to node allocatable."""
    target = container
    if selector.container_name:
        matches = [c for c in spec.all_containers() if c.name == selector.container_name]
        if not matches:
            raise ContainerConfigError(f"container {selector.container_name} not found")
        target = matches[0]
    kind, _, resource = selector.resource.partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ContainerConfigError(f"unsupported container resource : {selector.resource}")
    requirements = target.resources
    written = (
        (requirements.limits if kind == "limits" else requirements.requests)
        if requirements is not None
        else None
    ) or {}
    if resource in written:
        amount = parse_quantity(written[resource])
    elif kind == "limits":
        amount = allocatable.get(resource, Decimal(0))
    else:
        amount = Decimal(0)
    divisor = Decimal(0) if selector.divisor is None else parse_quantity(selector.divisor)
    if divisor == 0:
        divisor = Decimal(1)
    if resource == "cpu":
        return str(_ceil_div(milli_value(amount), milli_value(divisor)))
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        return str(_ceil_div(value(amount), value(divisor)))
    raise ContainerConfigError(f"unsupported container resource : {selector.resource}")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
