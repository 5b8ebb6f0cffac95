"""Daemon configuration: command-line flags over a config file over kubelet's defaults.

The config file is YAML with kubelet's KubeletConfiguration names where one exists
(``fileCheckFrequency``, ``containerLogMaxSize``, ``crashLoopBackOff.maxContainerRestartPeriod``),
so that an operator who knows kubelet knows these. Durations are Go-style (``20s``, ``1m30s``,
``500ms``) or plain seconds. Every time-based default is kubelet's; tests shrink them here.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import socket
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from minikubelet.api.quantity import parse_quantity


class ConfigError(Exception):
    """A config file or flag that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    manifests: Path
    state_dir: Path
    node_name: str
    runtime: str = "process"  # the default runtimeClassName
    listen_host: str = "127.0.0.1"
    listen_port: int = 10255
    podman_socket: Path = Path("/run/podman/podman.sock")
    containerd_socket: Path = Path("/run/containerd/containerd.sock")

    # manifest source
    file_check_frequency: float = 20.0  # full resync period (kubelet fileCheckFrequency)
    file_settle_delay: float = 0.05  # a file must be unchanged this long before it is read
    trust_non_root_files: bool = False  # read manifests whoever owns them (source/trust.py off)
    missing_is_empty: bool = False  # a missing manifests directory declares no pods (kubelet's)

    # restarts
    backoff_initial: float = 10.0  # CrashLoopBackOff first delay
    backoff_max: float = 300.0  # CrashLoopBackOff cap (maxContainerRestartPeriod)
    backoff_reset: float = 600.0  # clean running time after which the delay starts over

    # termination
    minimum_grace_period: float = 2.0  # kubelet's floor when preStop ate the grace period

    # logs
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5

    # node allocatable = capacity - systemReserved - kubeReserved - evictionHard (kubelet's)
    system_reserved_cpu: Decimal = Decimal(0)  # cores
    system_reserved_memory: Decimal = Decimal(0)  # bytes
    kube_reserved_cpu: Decimal = Decimal(0)
    kube_reserved_memory: Decimal = Decimal(0)
    eviction_hard_memory: Decimal = Decimal(100 * 1024 * 1024)  # memory.available<100Mi

    # status
    status_flush_interval: float = 0.5
    event_limit: int = 5000

    # HTTP API limits
    api_max_connections: int = 1000  # open at once (also capped at a quarter of RLIMIT_NOFILE)
    api_idle_timeout: float = 60.0  # a connection waiting this long for a request is closed
    api_max_follows_per_client: int = 100  # follow=true log streams per peer address
    api_max_watches_per_client: int = 100  # watches per peer address
    api_writes: bool = False  # the API's write verbs and exec sessions (opt-in)
    api_tls: bool = True  # false: plain HTTP, allowed on loopback only (kubectl needs TLS)
    api_tls_sans: tuple[str, ...] = ()  # more names for the serving certificate

    extra: dict[str, Any] = field(default_factory=dict)  # the EXTRA_KEYS settings, as written


def default_paths() -> tuple[Path, Path]:
    """(manifests, state dir): system paths as root, the working directory otherwise."""
    if os.geteuid() == 0:
        return Path("/etc/minikubelet/manifests"), Path("/var/lib/minikubelet")
    return Path("manifests"), Path(".minikubelet")


def default_node_name() -> str:
    return socket.gethostname().lower()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: object, *, where: str) -> float:
    """``1m30s`` / ``500ms`` / ``20`` (seconds) -> seconds."""
    bad = ConfigError(f"{where}: Invalid value: {value!r}: must be a duration such as 20s")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text, pos, seconds = value.replace(" ", ""), 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(text):
            raise bad
    else:
        raise bad
    if not math.isfinite(seconds):
        raise bad
    if seconds < 0:
        raise ConfigError(f"{where}: Invalid value: {value!r}: must not be negative")
    return seconds


# config-file key -> (DaemonConfig field, kind)
_KEYS: dict[str, tuple[str, str]] = {
    "manifests": ("manifests", "path"),
    "staticPodPath": ("manifests", "path"),
    "stateDir": ("state_dir", "path"),
    "nodeName": ("node_name", "str"),
    "runtime": ("runtime", "str"),
    "podmanSocket": ("podman_socket", "path"),
    "containerdSocket": ("containerd_socket", "path"),
    "fileCheckFrequency": ("file_check_frequency", "duration"),
    "fileSettleDelay": ("file_settle_delay", "duration"),
    "manifests.trustNonRootFiles": ("trust_non_root_files", "bool"),
    "manifests.missingIsEmpty": ("missing_is_empty", "bool"),
    "crashLoopBackOff.initialDelay": ("backoff_initial", "duration"),
    "crashLoopBackOff.maxContainerRestartPeriod": ("backoff_max", "duration"),
    "crashLoopBackOff.resetAfter": ("backoff_reset", "duration"),
    "minimumGracePeriod": ("minimum_grace_period", "duration"),
    "containerLogMaxSize": ("container_log_max_size", "quantity"),
    "containerLogMaxFiles": ("container_log_max_files", "int"),
    "systemReserved.cpu": ("system_reserved_cpu", "decimal"),
    "systemReserved.memory": ("system_reserved_memory", "decimal"),
    "kubeReserved.cpu": ("kube_reserved_cpu", "decimal"),
    "kubeReserved.memory": ("kube_reserved_memory", "decimal"),
    "evictionHard.memory.available": ("eviction_hard_memory", "decimal"),
    "statusFlushInterval": ("status_flush_interval", "duration"),
    "eventLimit": ("event_limit", "int"),
    "api.maxConnections": ("api_max_connections", "int"),
    "api.idleTimeout": ("api_idle_timeout", "positive duration"),
    "api.maxFollowsPerClient": ("api_max_follows_per_client", "int"),
    "api.maxWatchesPerClient": ("api_max_watches_per_client", "int"),
    "api.writes": ("api_writes", "bool"),
    "api.tls": ("api_tls", "bool"),
    "api.tlsSANs": ("api_tls_sans", "str list"),
}


# Keys that other parts of the daemon read (daemon.cgroup_settings), passed on in ``extra``.
EXTRA_KEYS: frozenset[str] = frozenset(
    {"cgroups.enabled", "cgroups.name", "cgroups.parent", "cgroups.pidsLimit"}
)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        # Even under a key that takes a value: "manifests: {trustNonRootFiles: true}" is
        # manifests.trustNonRootFiles (with the path given as staticPodPath or --manifests).
        if isinstance(value, dict):
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def load_config_file(path: Path, base: DaemonConfig) -> DaemonConfig:
    """Apply a YAML config file over ``base``. Unknown keys are errors that name the file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    changes: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in _flatten(data).items():
        where = f"{path}: {key}"
        if key in EXTRA_KEYS:
            extra[key] = value
            continue
        if key not in _KEYS:
            known = sorted({*_KEYS, *EXTRA_KEYS})
            folded = {k.lower(): k for k in known}
            close = difflib.get_close_matches(key.lower(), list(folded), n=1, cutoff=0.75)
            hint = f', did you mean "{folded[close[0]]}"?' if close else ""
            raise ConfigError(f"{where}: unknown setting{hint} (known: {', '.join(known)})")
        name, kind = _KEYS[key]
        if kind == "path":
            changes[name] = Path(str(value))
        elif kind == "str":
            changes[name] = str(value)
        elif kind == "duration":
            changes[name] = parse_duration(value, where=where)
        elif kind == "positive duration":
            changes[name] = parse_duration(value, where=where)
            if changes[name] <= 0:
                raise ConfigError(f"{where}: Invalid value: {value!r}: must be greater than 0")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: Invalid value: {value!r}: must be true or false")
            changes[name] = value
        elif kind == "str list":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where}: Invalid value: {value!r}: must be a list of names")
            changes[name] = tuple(value)
        elif kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}: Invalid value: {value!r}: must be a positive integer")
            changes[name] = value
        elif kind == "decimal":
            try:
                amount = parse_quantity(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: Invalid value: {value!r}: {exc}") from exc
            changes[name] = amount
        elif kind == "quantity":
            try:
                changes[name] = int(parse_quantity(value))
            except ValueError as exc:
                raise ConfigError(f"{where}: Invalid value: {value!r}: {exc}") from exc
    if extra:
        changes["extra"] = {**base.extra, **extra}
    return replace(base, **changes)


def field_names() -> list[str]:
    return [f.name for f in fields(DaemonConfig)]
