"""Property: any manifest decodes into a pod the daemon can use, or fails with field errors.

Manifests come from the schema (tests/manifest_strategies.py), with out-of-range, wrong-typed,
NUL-bearing and huge values, written as YAML or JSON. ``decode_pod`` may only raise
ManifestError, and every error in it names a field path (the few that are about the file as a
whole excepted); a pod that decodes must then survive everything the daemon derives from it:
QoS, cgroup figures, oom_score_adj, the environment and the command line, the API's JSON.
"""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings

from minikubelet.api.env import expand_command, expand_command_only_static, resolve_env
from minikubelet.api.errors import ContainerConfigError, ErrorType, FieldError, ManifestError
from minikubelet.api.model import Pod, dump
from minikubelet.api.resources import (
    container_resources,
    oom_score_adj,
    pod_limits,
    pod_requests,
    qos_class,
    resource_config_for_pod,
)
from minikubelet.api.validation import decode_pod
from tests.manifest_strategies import manifest_files

SOURCE = "manifests/fuzz.yaml"
FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def names_its_field(error: FieldError) -> bool:
    """A path, or a top-level key (unknown, or holding a NUL: the key is in the message); or an
    error that has no field to name: size, syntax, the count of errors not shown."""
    return bool(error.path) or (
        error.type in (ErrorType.TOO_LONG, ErrorType.UNKNOWN_FIELD)
        or error.detail.startswith("a key ")
        or error.detail.startswith("error parsing YAML")
        or error.detail.endswith("more errors not shown")
    )


def exercise(pod: Pod) -> None:
    """What the daemon computes from a pod it runs; none of it may raise."""
    spec = pod.spec
    qos_class(spec)
    resource_config_for_pod(spec)
    pod_requests(spec)
    pod_limits(spec)
    json.dumps(dump(pod))
    for container in spec.all_containers():
        container_resources(container)
        oom_score_adj(spec, container, node_memory=8 * 2**30)
        expand_command_only_static(container.command, container.env or [])
        try:
            env = resolve_env(
                pod_metadata=pod.metadata,
                spec=spec,
                container=container,
                node_name="node",
                host_ip="127.0.0.1",
                pod_ip="127.0.0.1",
                allocatable={"cpu": Decimal(2), "memory": Decimal(2**33)},
            )
            expand_command(container.command, container.args, env=env)
        except ContainerConfigError:
            pass  # CreateContainerConfigError: the pod's problem, reported on the pod


@FUZZ
@given(manifest_files())
def test_any_manifest_decodes_or_is_refused_with_field_errors(raw: bytes) -> None:
    try:
        decoded = decode_pod(raw, source=SOURCE)
    except ManifestError as exc:
        assert exc.errors
        for line, error in zip(exc.lines(), exc.errors, strict=True):
            assert line.startswith(f"{SOURCE}: ")
            assert names_its_field(error), line
        return
    exercise(decoded.pod)
