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

Expansion is bounded by what ``execve`` accepts, and checked as the text grows: one argument or
``NAME=value`` holds at most ``MAX_ARG_CHARS`` (the kernel's MAX_ARG_STRLEN, less the NUL) and
the environment and arguments together at most ``MAX_EXEC_CHARS`` (ARG_MAX with the default
8 MiB stack). Without that, a few variables that each repeat the one before (``B=$(A)$(A)``,
``C=$(B)$(B)``, ...) would ask for gigabytes. ``static_expansion_problems`` runs the same
expansion at validation time with every ``valueFrom`` variable empty, so a manifest whose own
text is too long once expanded is refused with the field's path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

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

MAX_ARG_CHARS: Final = 32 * 4096 - 1
MAX_EXEC_CHARS: Final = 2 * 1024 * 1024

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


class ExpansionTooLong(ContainerConfigError):
    """A ``$(VAR)`` expansion outgrew its limit (``limit``, in characters)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"expands to more than {limit} characters")
        self.limit = limit


def expand(text: str, lookup: Mapping[str, str], *, limit: int = MAX_ARG_CHARS) -> str:
    """Replace ``$(VAR)`` with ``lookup[VAR]``; ``$$`` is ``$``; anything else stays as is.
    Raises ExpansionTooLong as soon as the result would exceed ``limit`` characters."""
    out: list[str] = []
    size = 0
    checkpoint = 0  # text[checkpoint:] is not emitted yet
    closed = True  # whether a ")" may still follow: once none does, "$(" is never a reference
    cursor = text.find(_OPERATOR)
    while 0 <= cursor < len(text) - 1:
        piece, advance = text[cursor : cursor + 2], 2  # "$x" is not a reference: kept
        following = text[cursor + 1]
        if following == _OPERATOR:  # "$$": an escaped operator
            piece = _OPERATOR
        elif following == _OPENER:
            closer = text.find(_CLOSER, cursor + 2) if closed else -1
            if closer == -1:  # unterminated: keep "$(" and scan on after it
                closed = False
            else:
                name = text[cursor + 2 : closer]
                piece, advance = lookup.get(name, f"$({name})"), closer + 1 - cursor
        size += cursor - checkpoint + len(piece)
        if size > limit:
            raise ExpansionTooLong(limit)
        out += (text[checkpoint:cursor], piece)
        checkpoint = cursor + advance
        cursor = text.find(_OPERATOR, checkpoint)
    if size + len(text) - checkpoint > limit:
        raise ExpansionTooLong(limit)
    return "".join(out) + text[checkpoint:]


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
    budget = MAX_EXEC_CHARS
    for var in container.env or []:
        if var.value:
            runtime_value = _expand_var(var.name, var.value, resolved, budget)
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
        budget -= len(var.name) + 1 + len(runtime_value)
    return list(resolved.items())


def _expand_var(name: str, value: str, resolved: Mapping[str, str], budget: int) -> str:
    try:
        return expand(value, resolved, limit=min(MAX_ARG_CHARS - len(name) - 1, budget))
    except ExpansionTooLong as exc:
        raise ContainerConfigError(f"env {name!r}: {exc}{_LIMITS}") from None


_LIMITS = (
    f" (one argument or NAME=value may hold {MAX_ARG_CHARS}, the environment and the "
    f"arguments together {MAX_EXEC_CHARS})"
)


def expand_command(
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    *,
    env: Iterable[tuple[str, str]] | Mapping[str, str],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ExpandContainerCommandAndArgs: ``$(VAR)`` in command and args from the resolved env."""
    lookup = dict(env.items() if isinstance(env, Mapping) else env)
    budget = MAX_EXEC_CHARS - sum(len(name) + 1 + len(value) for name, value in lookup.items())
    expanded: list[tuple[str, ...]] = []
    for field, parts in (("command", command), ("args", args)):
        out: list[str] = []
        for i, part in enumerate(parts or ()):
            try:
                out.append(expand(part, lookup, limit=min(MAX_ARG_CHARS, budget)))
            except ExpansionTooLong as exc:
                raise ContainerConfigError(f"{field}[{i}]: {exc}{_LIMITS}") from None
            budget -= len(out[-1]) + 1
        expanded.append(tuple(out))
    return expanded[0], expanded[1]


def static_expansion_problems(container: Container) -> list[tuple[str, str]]:
    """(field path under the container, problem) for the first env value, command or args
    entry, and the first entry of each exec probe or hook, that is too long for ``execve`` as
    the manifest itself writes it: ``valueFrom`` variables count as empty (exec probes see them
    so), so this is a lower bound on what the container will need."""
    problems: list[tuple[str, str]] = []
    resolved: dict[str, str] = {}
    budget = MAX_EXEC_CHARS

    def fits(path: str, text: str, lookup: Mapping[str, str], limit: int) -> str | None:
        try:
            return expand(text, lookup, limit=limit)
        except ExpansionTooLong as exc:
            problems.append((path, f"{exc}{_LIMITS}"))
            return None

    for i, var in enumerate(container.env or []):
        room = min(MAX_ARG_CHARS - len(var.name) - 1, budget)
        value = fits(f"env[{i}].value", var.value, resolved, room) if var.value else ""
        if value is None:
            break
        resolved[var.name] = value
        budget -= len(var.name) + 1 + len(value)
    for field, parts in (("command", container.command), ("args", container.args)):
        for i, part in enumerate(parts or ()):
            value = fits(f"{field}[{i}]", part, resolved, min(MAX_ARG_CHARS, budget))
            if value is None:
                return problems
            budget -= len(value) + 1
    static = {var.name: var.value or "" for var in container.env or []}
    hooks = container.lifecycle
    for path, handler, lookup in (
        ("livenessProbe", container.liveness_probe, static),
        ("readinessProbe", container.readiness_probe, static),
        ("startupProbe", container.startup_probe, static),
        ("lifecycle.postStart", hooks and hooks.post_start, {}),  # hooks expand nothing
        ("lifecycle.preStop", hooks and hooks.pre_stop, {}),
    ):
        budget = MAX_EXEC_CHARS
        for i, part in enumerate(handler.exec.command or [] if handler and handler.exec else []):
            value = fits(f"{path}.exec.command[{i}]", part, lookup, min(MAX_ARG_CHARS, budget))
            if value is None:
                break
            budget -= len(value) + 1
    return problems


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
