"""kubectl's output, as pure functions from API objects to text.

Everything here is a port of kubectl's own code, so that ``minikubelet get pods`` and
``minikubelet describe pod`` read exactly like ``kubectl get pods`` and ``kubectl describe pod``
on a cluster, column for column and space for space:

- the STATUS/READY/RESTARTS columns follow ``printPod`` (k8s ``pkg/printers/internalversion/
  printers.go``), sidecars (restartable init containers) included;
- ages are apimachinery's ``duration.HumanDuration``;
- alignment is Go's ``text/tabwriter``, ported below as ``_tabwrite``: kubectl's table printer
  uses minwidth 6, padding 3; ``describe`` uses minwidth 0, padding 2 (``tabbedString``). A column
  is aligned only across a run of consecutive lines that all have a cell in it, which is why
  ``describe`` aligns each section on its own;
- ``describe_pod`` follows ``describePod`` in ``kubectl/pkg/describe/describe.go``, with its
  2-space levels, labels, ``<none>``s and trailing spaces.

Pod specs arrive as JSON (``PodView.spec``) and are read tolerantly, field by field, as kubectl
reads an object from a newer server. Nothing here does I/O or reads the clock: callers pass
``now`` (and, for absolute times, ``tz``; None is the local zone, as kubectl prints).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from urllib.parse import quote

from pydantic import JsonValue

from minikubelet.api.model import (
    ContainerState,
    ContainerStatus,
    Event,
    PodStatus,
    PodView,
)

# --- Go's text/tabwriter ----------------------------------------------------------------------


def _tabwrite(text: str, *, minwidth: int, padding: int) -> str:
    """Align tab-terminated cells the way Go's ``tabwriter.Writer`` (padchar ' ', flags 0) does.

    The text after a line's last tab is not a cell: it is never padded and never widens a
    column. A column's width is computed over a block of consecutive lines that all have a cell
    in that column, recursively from the left (``Writer.format``)."""
    raw = text.split("\n")
    trailing = raw.pop()  # text after the last newline ("" when text ends with one)
    lines = [line.split("\t") for line in raw]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            parts: list[str] = []
            for j, cell in enumerate(lines[i]):
                parts.append(cell)
                if j < len(widths):
                    parts.append(" " * (widths[j] - len(cell)))
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A cell exists in this column: print the lines above, then size the block.
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "".join(line + "\n" for line in out) + trailing


class _PrefixWriter:
    """kubectl's PrefixWriter: each level indents by two spaces; the text goes to a tabwriter."""

    def __init__(self) -> None:
        self._buf: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._buf.append("  " * level + text)

    def line(self, text: str) -> None:
        """WriteLine: the text and a newline, no indentation."""
        self._buf.append(text + "\n")

    def render(self) -> str:
        return _tabwrite("".join(self._buf), minwidth=0, padding=2)


# --- time -----------------------------------------------------------------------------------


def human_duration(d: timedelta) -> str:
    """apimachinery ``duration.HumanDuration``: ~2-3 significant figures (5s, 2m3s, 10m, 3h)."""
    micros = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    # Go converts with truncation toward zero.
    seconds = micros // 1_000_000 if micros >= 0 else -((-micros) // 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(t: datetime | None, now: datetime) -> str:
    """kubectl ``translateTimestampSince``."""
    if t is None:
        return "<unknown>"
    return human_duration(now - t)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_rfc1123z(t: datetime | None, tz: tzinfo | None = None) -> str:
    """Go's ``time.RFC1123Z`` (``Mon, 02 Jan 2006 15:04:05 -0700``), locale-independent.

    ``None`` is Go's zero time, which kubectl prints for an unset timestamp."""
    if t is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    local = t.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[local.weekday()]}, {local.day:02d} {_MONTHS[local.month - 1]} {local.year:04d} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d} {sign}{hh:02d}{mm:02d}"
    )


def parse_time(value: JsonValue) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- tolerant JSON access -----------------------------------------------------------------------


def _obj(value: JsonValue) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else {}


def _arr(value: JsonValue) -> list[JsonValue]:
    return value if isinstance(value, list) else []


def _str(value: JsonValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _int(value: JsonValue, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


# --- get pods -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodRow:
    """One row of ``kubectl get pods``, every cell as kubectl computes it."""

    namespace: str
    name: str
    ready: str  # "1/2"
    status: str  # "Running", "Init:0/2", "CrashLoopBackOff", ...
    restarts: str  # "3" or "3 (12s ago)"
    age: str
    ip: str
    node: str
    nominated_node: str
    readiness_gates: str


def _is_restartable_init(spec: dict[str, JsonValue] | None) -> bool:
    return spec is not None and spec.get("restartPolicy") == "Always"


def _condition_true(status: PodStatus, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in status.conditions)


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    if current is None or current < candidate:
        return candidate
    return current


def pod_row(pod: PodView, *, now: datetime) -> PodRow:
    """kubectl ``printPod``: READY, STATUS and RESTARTS exactly as kubectl derives them."""
    status = pod.status
    spec = pod.spec
    meta = pod.metadata
    containers = _arr(spec.get("containers"))
    init_specs = [_obj(c) for c in _arr(spec.get("initContainers"))]

    restarts = 0
    sidecar_restarts = 0
    total = len(containers)
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = status.phase
    reason = status.reason or phase
    for cond in status.conditions:
        if cond.type == "PodScheduled" and cond.reason == "SchedulingGated":
            reason = "SchedulingGated"

    init_by_name: dict[str, dict[str, JsonValue]] = {}
    for c in init_specs:
        init_by_name[_str(c.get("name"))] = c
        if _is_restartable_init(c):
            total += 1

    initializing = False
    init_statuses = status.init_container_statuses or []
    for i, cs in enumerate(init_statuses):
        restarts += cs.restart_count
        last_term = cs.last_state.terminated
        if last_term is not None:
            last_restart = _later(last_restart, last_term.finished_at)
        sidecar = _is_restartable_init(init_by_name.get(cs.name))
        if sidecar:
            sidecar_restarts += cs.restart_count
            if last_term is not None:
                last_sidecar_restart = _later(last_sidecar_restart, last_term.finished_at)
        term = cs.state.terminated
        waiting = cs.state.waiting
        if term is not None and term.exit_code == 0:
            continue
        if sidecar and cs.started:
            if cs.ready:
                ready += 1
            continue
        if term is not None:
            # initialization has failed
            if not term.reason:
                if term.signal:
                    reason = f"Init:Signal:{term.signal}"
                else:
                    reason = f"Init:ExitCode:{term.exit_code}"
            else:
                reason = "Init:" + term.reason
        elif waiting is not None and waiting.reason and waiting.reason != "PodInitializing":
            reason = "Init:" + waiting.reason
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.container_statuses or []):
            restarts += cs.restart_count
            if cs.last_state.terminated is not None:
                last_restart = _later(last_restart, cs.last_state.terminated.finished_at)
            waiting = cs.state.waiting
            term = cs.state.terminated
            if waiting is not None and waiting.reason:
                reason = waiting.reason
            elif term is not None and term.reason:
                reason = term.reason
            elif term is not None:
                reason = f"Signal:{term.signal}" if term.signal else f"ExitCode:{term.exit_code}"
            elif cs.ready and cs.state.running is not None:
                has_running = True
                ready += 1
        # back to "Running" if at least one container still reports running
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.reason == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_text = f"{restarts} ({since(last_restart, now)} ago)"

    # kubectl reads podIPs; podIP is a fallback for a status that only carries the old field.
    ip = status.pod_ips[0].ip if status.pod_ips else (status.pod_ip or "")
    gates = _arr(spec.get("readinessGates"))
    readiness_gates = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            wanted = _str(_obj(gate).get("conditionType"))
            for cond in status.conditions:
                if cond.type == wanted:
                    true_count += cond.status == "True"
                    break
        readiness_gates = f"{true_count}/{len(gates)}"

    return PodRow(
        namespace=_str(meta.get("namespace")) or "default",
        name=_str(meta.get("name")),
        ready=f"{ready}/{total}",
        status=reason,
        restarts=restarts_text,
        age=since(parse_time(meta.get("creationTimestamp")), now),
        ip=ip or "<none>",
        node=_str(spec.get("nodeName")) or "<none>",
        nominated_node="<none>",  # no scheduler here: status.nominatedNodeName is never set
        readiness_gates=readiness_gates,
    )


def get_pods_table(
    pods: Sequence[PodView], *, wide: bool, now: datetime, all_namespaces: bool = False
) -> str:
    """``kubectl get pods`` (``-o wide``, ``-A``): header and one row per pod, in given order."""
    header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if wide:
        header += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for pod in pods:
        r = pod_row(pod, now=now)
        cells = [r.name, r.ready, r.status, r.restarts, r.age]
        if wide:
            cells += [r.ip, r.node, r.nominated_node, r.readiness_gates]
        if all_namespaces:
            cells.insert(0, r.namespace)
        rows.append(cells)
    text = "".join("\t".join(cells) + "\n" for cells in rows)
    return _tabwrite(text, minwidth=6, padding=3)


# --- describe pod -------------------------------------------------------------------------------

_MAX_ANNOTATION_LEN = 140
_SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


def _labels_multiline(w: _PrefixWriter, title: str, labels: dict[str, JsonValue]) -> None:
    w.write(0, f"{title}:\t")
    if not labels:
        w.line("<none>")
        return
    for i, key in enumerate(sorted(labels)):
        if i != 0:
            w.write(0, "\t")
        w.write(0, f"{key}={_str(labels[key])}\n")


def _annotations_multiline(w: _PrefixWriter, title: str, annotations: dict[str, JsonValue]) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations if k not in _SKIP_ANNOTATIONS)
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i != 0:
            w.write(0, "\t")
        value = _str(annotations[key]).removesuffix("\n")
        if len(value.encode()) + len(key.encode()) + 2 > _MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for s in value.split("\n"):
                short = s if len(s) <= _MAX_ANNOTATION_LEN - 2 else s[: _MAX_ANNOTATION_LEN - 2]
                w.write(0, f"\t  {short}{'...' if short != s else ''}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _tolerations_multiline(w: _PrefixWriter, title: str, tolerations: list[JsonValue]) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.line("<none>")
        return
    items = sorted((_obj(t) for t in tolerations), key=lambda t: _str(t.get("key")))
    for i, t in enumerate(items):
        if i != 0:
            w.write(0, "\t")
        key, value, effect = _str(t.get("key")), _str(t.get("value")), _str(t.get("effect"))
        text = key
        if value:
            text += f"={value}"
        if effect:
            text += f":{effect}"
        if t.get("operator") == "Exists" and not value:
            text += " op=Exists" if key or effect else "op=Exists"
        seconds = t.get("tolerationSeconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            text += f" for {seconds}s"
        w.write(0, text + "\n")


def _go_list(items: list[JsonValue]) -> str:
    """Go's ``%v`` of a []string: ``[a b c]``."""
    return "[" + " ".join(_str(i) for i in items) + "]"


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_probe(probe: dict[str, JsonValue]) -> str:
    """kubectl ``DescribeProbe``: ``exec [cat /tmp/healthy] delay=30s timeout=1s ...``."""
    attrs = (
        f"delay={_int(probe.get('initialDelaySeconds'))}s "
        f"timeout={_int(probe.get('timeoutSeconds'), 1)}s "
        f"period={_int(probe.get('periodSeconds'), 10)}s "
        f"#success={_int(probe.get('successThreshold'), 1)} "
        f"#failure={_int(probe.get('failureThreshold'), 3)}"
    )
    if "exec" in probe and probe["exec"] is not None:
        return f"exec {_go_list(_arr(_obj(probe['exec']).get('command')))} {attrs}"
    if "httpGet" in probe and probe["httpGet"] is not None:
        http = _obj(probe["httpGet"])
        scheme = (_str(http.get("scheme")) or "HTTP").lower()
        host, port = _str(http.get("host")), _str(http.get("port"))
        netloc = _join_host_port(host, port) if port else host
        path = _str(http.get("path"))
        if path and not path.startswith("/") and netloc:
            path = "/" + path
        url = f"{scheme}://{netloc}{quote(path, safe='/$&+,:;=@')}"
        return f"http-get {url} {attrs}"
    if "tcpSocket" in probe and probe["tcpSocket"] is not None:
        tcp = _obj(probe["tcpSocket"])
        return f"tcp-socket {_str(tcp.get('host'))}:{_str(tcp.get('port'))} {attrs}"
    if "grpc" in probe and probe["grpc"] is not None:
        grpc = _obj(probe["grpc"])
        return f"grpc <pod>:{_int(grpc.get('port'))} {_str(grpc.get('service'))} {attrs}"
    return f"unknown {attrs}"


def _field_value(pod: PodView, field_path: str) -> str:
    """kubectl ``EnvValueRetriever``: the value a downward-API fieldRef resolves to."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if field_path.startswith(prefix + "['") and field_path.endswith("']"):
            return _str(_obj(meta.get(source)).get(field_path[len(prefix) + 2 : -2]))
        if field_path == prefix:
            values = _obj(meta.get(source))
            return "\n".join(f'{k}="{_str(values[k])}"' for k in sorted(values))
    simple: dict[str, str | None] = {
        "metadata.name": _str(meta.get("name")),
        "metadata.namespace": _str(meta.get("namespace")),
        "metadata.uid": _str(meta.get("uid")),
        "spec.nodeName": _str(spec.get("nodeName")),
        "spec.serviceAccountName": _str(spec.get("serviceAccountName")),
        "status.hostIP": status.host_ip,
        "status.podIP": status.pod_ip,
        "status.hostIPs": ",".join(ip.ip for ip in status.host_ips or []),
        "status.podIPs": ",".join(ip.ip for ip in status.pod_ips or []),
    }
    return simple.get(field_path) or ""


def _parse_quantity(value: JsonValue) -> Decimal | None:
    try:
        from minikubelet.api.quantity import parse_quantity

        return parse_quantity(value)
    except (NotImplementedError, ValueError, ArithmeticError, ImportError):
        return None


def _resource_field_value(container: dict[str, JsonValue], ref: dict[str, JsonValue]) -> str:
    """kubectl ``ExtractContainerResourceValue``: ceil(quantity / divisor), "0" when unset."""
    resource = _str(ref.get("resource"))
    kind, _, name = resource.partition(".")
    values = _obj(_obj(container.get("resources")).get(kind))
    quantity = _parse_quantity(values[name]) if name in values else Decimal(0)
    divisor = _parse_quantity(ref["divisor"]) if ref.get("divisor") is not None else Decimal(1)
    if quantity is None or divisor is None or divisor == 0:
        return ""
    return str(math.ceil(quantity / divisor))


def _describe_state(w: _PrefixWriter, name: str, state: ContainerState, tz: tzinfo | None) -> None:
    if state.running is not None:
        w.write(2, f"{name}:\tRunning\n")
        w.write(3, f"Started:\t{format_rfc1123z(state.running.started_at, tz)}\n")
    elif state.waiting is not None:
        w.write(2, f"{name}:\tWaiting\n")
        if state.waiting.reason:
            w.write(3, f"Reason:\t{state.waiting.reason}\n")
    elif state.terminated is not None:
        t = state.terminated
        w.write(2, f"{name}:\tTerminated\n")
        if t.reason:
            w.write(3, f"Reason:\t{t.reason}\n")
        if t.message:
            w.write(3, f"Message:\t{t.message}\n")
        w.write(3, f"Exit Code:\t{t.exit_code}\n")
        if t.signal and t.signal > 0:
            w.write(3, f"Signal:\t{t.signal}\n")
        w.write(3, f"Started:\t{format_rfc1123z(t.started_at, tz)}\n")
        w.write(3, f"Finished:\t{format_rfc1123z(t.finished_at, tz)}\n")
    else:
        w.write(2, f"{name}:\tWaiting\n")


def _describe_resources(w: _PrefixWriter, resources: dict[str, JsonValue], level: int) -> None:
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = _obj(resources.get(key))
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{_str(values[name])}\n")


def _describe_containers(
    w: _PrefixWriter,
    label: str,
    containers: list[dict[str, JsonValue]],
    statuses: list[ContainerStatus],
    pod: PodView,
    tz: tzinfo | None,
) -> None:
    by_name = {s.name: s for s in statuses}
    w.write(0, f"{label}:{'' if containers else ' <none>'}\n")
    for c in containers:
        status = by_name.get(_str(c.get("name")))
        w.write(1, f"{_str(c.get('name'))}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.container_id or ''}\n")
        w.write(2, f"Image:\t{_str(c.get('image'))}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.image_id}\n")
        ports = [_obj(p) for p in _arr(c.get("ports"))]
        port_text = ", ".join(
            f"{_int(p.get('containerPort'))}/{_str(p.get('protocol')) or 'TCP'}" for p in ports
        )
        if "," in port_text:
            w.write(2, f"Ports:\t{port_text}\n")
        else:
            w.write(2, f"Port:\t{port_text or '<none>'}\n")
        host_text = ", ".join(
            f"{_int(p.get('hostPort'))}/{_str(p.get('protocol')) or 'TCP'}" for p in ports
        )
        if "," in host_text:
            w.write(2, f"Host Ports:\t{host_text}\n")
        else:
            w.write(2, f"Host Port:\t{host_text or '<none>'}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            items = _arr(c.get(key))
            if items:
                w.write(2, f"{title}:\n")
                for item in items:
                    for s in _str(item).split("\n"):
                        w.write(3, f"{s}\n")
        if status is not None:
            _describe_state(w, "State", status.state, tz)
            if status.last_state.terminated is not None:
                _describe_state(w, "Last State", status.last_state, tz)
            w.write(2, f"Ready:\t{'True' if status.ready else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.restart_count}\n")
        _describe_resources(w, _obj(c.get("resources")), 2)
        for title, key in (
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ):
            if c.get(key) is not None:
                w.write(2, f"{title}:\t{describe_probe(_obj(c.get(key)))}\n")
        env = [_obj(e) for e in _arr(c.get("env"))]
        w.write(2, f"Environment:{'' if env else chr(9) + '<none>'}\n")
        for e in env:
            name = _str(e.get("name"))
            source = _obj(e.get("valueFrom")) if e.get("valueFrom") is not None else None
            if source is None:
                for i, s in enumerate(_str(e.get("value")).split("\n")):
                    w.write(3, f"{name}:\t{s}\n" if i == 0 else f"\t{s}\n")
            elif source.get("fieldRef") is not None:
                ref = _obj(source["fieldRef"])
                path = _str(ref.get("fieldPath"))
                version = _str(ref.get("apiVersion")) or "v1"
                w.write(3, f"{name}:\t{_field_value(pod, path)} ({version}:{path})\n")
            elif source.get("resourceFieldRef") is not None:
                ref = _obj(source["resourceFieldRef"])
                resource = _str(ref.get("resource"))
                value = _resource_field_value(c, ref)
                if value == "0" and resource in ("limits.cpu", "limits.memory"):
                    value = "node allocatable"
                w.write(3, f"{name}:\t{value} ({resource})\n")
            elif source.get("secretKeyRef") is not None:
                ref = _obj(source["secretKeyRef"])
                optional = "true" if ref.get("optional") is True else "false"
                w.write(
                    3,
                    f"{name}:\t<set to the key '{_str(ref.get('key'))}' in secret "
                    f"'{_str(ref.get('name'))}'>\tOptional: {optional}\n",
                )
            elif source.get("configMapKeyRef") is not None:
                ref = _obj(source["configMapKeyRef"])
                optional = "true" if ref.get("optional") is True else "false"
                w.write(
                    3,
                    f"{name}:\t<set to the key '{_str(ref.get('key'))}' of config map "
                    f"'{_str(ref.get('name'))}'>\tOptional: {optional}\n",
                )
        mounts = sorted(
            (_obj(m) for m in _arr(c.get("volumeMounts"))),
            key=lambda m: _str(m.get("mountPath")),
        )
        w.write(2, f"Mounts:{'' if mounts else chr(9) + '<none>'}\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") is True else "rw"]
            if m.get("subPath"):
                flags.append(f"path={json.dumps(_str(m.get('subPath')))}")
            w.write(
                3,
                f"{_str(m.get('mountPath'))} from {_str(m.get('name'))} ({','.join(flags)})\n",
            )


def _describe_volumes(w: _PrefixWriter, volumes: list[JsonValue]) -> None:
    if not volumes:
        w.write(0, "Volumes:\t<none>\n")
        return
    w.write(0, "Volumes:\n")
    for v in (_obj(v) for v in volumes):
        w.write(1, f"{_str(v.get('name'))}:\n")
        if v.get("hostPath") is not None:
            hp = _obj(v["hostPath"])
            kind = _str(hp["type"]) if "type" in hp and hp["type"] is not None else "<none>"
            w.write(
                2,
                "Type:\tHostPath (bare host directory volume)\n"
                f"    Path:\t{_str(hp.get('path'))}\n"
                f"    HostPathType:\t{kind}\n",
            )
        elif v.get("emptyDir") is not None:
            ed = _obj(v["emptyDir"])
            limit = ed.get("sizeLimit")
            quantity = _parse_quantity(limit) if limit is not None else None
            shown = _str(limit) if limit is not None and (quantity is None or quantity > 0) else ""
            w.write(
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                f"    Medium:\t{_str(ed.get('medium'))}\n"
                f"    SizeLimit:\t{shown or '<unset>'}\n",
            )
        else:
            w.write(1, "<unknown>\n")


def _same_quantity(a: JsonValue, b: JsonValue) -> bool:
    qa, qb = _parse_quantity(a), _parse_quantity(b)
    if qa is None or qb is None:
        return _str(a) == _str(b)
    return qa == qb


def _qos_class(pod: PodView) -> str:
    """kubectl ``qos.GetPodQOS``: the status field, else computed from the spec."""
    if pod.status.qos_class:
        return pod.status.qos_class
    containers = [
        _obj(c) for c in [*_arr(pod.spec.get("initContainers")), *_arr(pod.spec.get("containers"))]
    ]
    any_set = False
    guaranteed = True
    for c in containers:
        res = _obj(c.get("resources"))
        requests, limits = _obj(res.get("requests")), _obj(res.get("limits"))
        for name in ("cpu", "memory"):
            req, lim = requests.get(name), limits.get(name)
            if (req is not None and _parse_quantity(req) != 0) or lim is not None:
                any_set = True
            same = req is None or lim is None or _same_quantity(req, lim)
            if lim is None or not same:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def describe_events(w: _PrefixWriter, events: Sequence[Event], now: datetime) -> None:
    """kubectl ``DescribeEvents``: the Type/Reason/Age/From/Message table, oldest first."""
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    ordered = sorted(events, key=lambda e: e.last_timestamp or e.first_timestamp or now)
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in ordered:
        first = since(e.first_timestamp, now)
        if e.count > 1:
            interval = f"{since(e.last_timestamp, now)} (x{e.count} over {first})"
        else:
            interval = first
        source = e.source.component or e.reporting_component
        message = e.message.strip()
        if e.involved_object.field_path:
            # kubectl 1.37 names the container the event is about before the message.
            message = f"{e.involved_object.field_path}: {message}"
        w.write(1, f"{e.type}\t{e.reason}\t{interval}\t{source}\t{message}\n")


def describe_pod(
    pod: PodView, events: Sequence[Event], *, now: datetime, tz: tzinfo | None = None
) -> str:
    """``kubectl describe pod``: header, containers, conditions, volumes, QoS, events."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    w = _PrefixWriter()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.write(0, f"Namespace:\t{_str(meta.get('namespace'))}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{_int(spec.get('priority'))}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{_str(spec.get('priorityClassName'))}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{_str(spec.get('runtimeClassName'))}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{_str(spec.get('serviceAccountName'))}\n")
    node = _str(spec.get("nodeName"))
    w.write(0, f"Node:\t{node + '/' + (status.host_ip or '') if node else '<none>'}\n")
    if status.start_time is not None:
        w.write(0, f"Start Time:\t{format_rfc1123z(status.start_time, tz)}\n")
    _labels_multiline(w, "Labels", _obj(meta.get("labels")))
    _annotations_multiline(w, "Annotations", _obj(meta.get("annotations")))
    deletion = parse_time(meta.get("deletionTimestamp"))
    if deletion is not None and status.phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {since(deletion, now)})\n")
        grace = _int(meta.get("deletionGracePeriodSeconds"))
        w.write(0, f"Termination Grace Period:\t{grace}s\n")
    else:
        w.write(0, f"Status:\t{status.phase}\n")
    if status.reason:
        w.write(0, f"Reason:\t{status.reason}\n")
    if status.message:
        w.write(0, f"Message:\t{status.message}\n")
    w.write(0, f"IP:\t{status.pod_ip or ''}\n")
    if not status.pod_ips:
        w.write(0, "IPs:\t<none>\n")
    else:
        w.write(0, "IPs:\n")
        for ip in status.pod_ips:
            w.write(1, f"IP:\t{ip.ip}\n")
    init = [_obj(c) for c in _arr(spec.get("initContainers"))]
    if init:
        _describe_containers(
            w, "Init Containers", init, status.init_container_statuses or [], pod, tz
        )
    regular = [_obj(c) for c in _arr(spec.get("containers"))]
    _describe_containers(w, "Containers", regular, status.container_statuses or [], pod, tz)
    gates = [_obj(g) for g in _arr(spec.get("readinessGates"))]
    if gates:
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for g in gates:
            wanted = _str(g.get("conditionType"))
            found = next((c.status for c in status.conditions if c.type == wanted), "<none>")
            w.write(1, f"{wanted} \t{found} \n")
    if status.conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for cond in status.conditions:
            w.write(1, f"{cond.type} \t{cond.status} \n")
    _describe_volumes(w, _arr(spec.get("volumes")))
    w.write(0, f"QoS Class:\t{_qos_class(pod)}\n")
    _labels_multiline(w, "Node-Selectors", _obj(spec.get("nodeSelector")))
    _tolerations_multiline(w, "Tolerations", _arr(spec.get("tolerations")))
    describe_events(w, events, now)
    return w.render()


# --- -o json / -o yaml --------------------------------------------------------------------------


def to_json(obj: JsonValue) -> str:
    """kubectl ``-o json``: 4-space indent, sorted keys, Go's HTML-safe escaping."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text + "\n"


def to_yaml(obj: JsonValue) -> str:
    """kubectl ``-o yaml``: block style, sorted keys, sequences not indented under their key."""
    import yaml

    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True, allow_unicode=True)


def list_object(items: list[JsonValue]) -> dict[str, JsonValue]:
    """What ``kubectl get pods -o json`` prints for several objects: a v1 ``List``."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
