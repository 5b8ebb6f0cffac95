"""Env resolution and $(VAR) expansion, as kubelet's makeEnvironmentVariables and expand.go."""

from __future__ import annotations

from decimal import Decimal

import pytest

from minikubelet.api.env import (
    expand,
    expand_command,
    expand_command_only_static,
    resolve_env,
    split_subscripted_path,
)
from minikubelet.api.errors import ContainerConfigError
from minikubelet.api.model import Container, ObjectMeta, PodSpec


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)z", "xaybz"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$$$$", "$$"),
        ("$$$(A)", "$a"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$(A", "$(A"),
        ("$(", "$("),
        ("$", "$"),
        ("a$", "a$"),
        ("$A", "$A"),
        ("$()", "$()"),
        ("$(A)$(A)", "aa"),
        ("(A)", "(A)"),
        ("$(B)(A)", "b(A)"),
        ("no refs", "no refs"),
        ("", ""),
    ],
)
def test_expand_follows_kubernetes_expansion_rules(text, expanded):
    assert expand(text, {"A": "a", "B": "b"}) == expanded


def test_expand_does_not_expand_the_replacement_again():
    assert expand("$(A)", {"A": "$(B)", "B": "b"}) == "$(B)"


def test_split_subscripted_path():
    assert split_subscripted_path("metadata.labels['app']") == ("metadata.labels", "app")
    assert split_subscripted_path("metadata.labels") is None
    assert split_subscripted_path("['x']") is None


def _container(env: list[dict[str, object]], **extra: object) -> Container:
    return Container.model_validate({"name": "app", "env": env, **extra})


META = ObjectMeta.model_validate(
    {
        "name": "web-node1",
        "namespace": "prod",
        "uid": "1234",
        "labels": {"app": "web"},
        "annotations": {"team": "core"},
    }
)


def _resolve(ctr: Container, **kwargs: object) -> dict[str, str]:
    spec = PodSpec.model_validate(
        {"containers": [ctr.model_dump(by_alias=True, exclude_unset=True)]}
    )
    return dict(
        resolve_env(
            pod_metadata=META,
            spec=spec,
            container=ctr,
            node_name="node1",
            host_ip="10.0.0.1",
            pod_ip="10.0.0.2",
            **kwargs,  # type: ignore[arg-type]
        )
    )


def test_values_expand_against_variables_defined_before_them():
    ctr = _container(
        [
            {"name": "LATER_REF", "value": "$(HOST)"},
            {"name": "HOST", "value": "example"},
            {"name": "URL", "value": "http://$(HOST):$(PORT)/"},
            {"name": "ESCAPED", "value": "$$(HOST)"},
        ]
    )
    assert _resolve(ctr) == {
        "LATER_REF": "$(HOST)",
        "HOST": "example",
        "URL": "http://example:$(PORT)/",
        "ESCAPED": "$(HOST)",
    }


def test_a_redefined_variable_keeps_its_first_position_and_takes_the_last_value():
    ctr = _container(
        [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}, {"name": "A", "value": "2"}]
    )
    spec = PodSpec.model_validate({"containers": [{"name": "app"}]})
    env = resolve_env(
        pod_metadata=META,
        spec=spec,
        container=ctr,
        node_name="n",
        host_ip="h",
        pod_ip="p",
    )
    assert env == [("A", "2"), ("B", "1")]


def test_field_refs_resolve_from_pod_metadata_node_and_ips():
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "APP": "metadata.labels['app']",
        "MISSING": "metadata.labels['nope']",
        "TEAM": "metadata.annotations['team']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "HOST_IP": "status.hostIP",
        "HOST_IPS": "status.hostIPs",
        "POD_IP": "status.podIP",
        "POD_IPS": "status.podIPs",
    }
    ctr = _container(
        [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()]
    )
    assert _resolve(ctr) == {
        "NAME": "web-node1",
        "NS": "prod",
        "UID": "1234",
        "APP": "web",
        "MISSING": "",
        "TEAM": "core",
        "NODE": "node1",
        "SA": "",
        "HOST_IP": "10.0.0.1",
        "HOST_IPS": "10.0.0.1",
        "POD_IP": "10.0.0.2",
        "POD_IPS": "10.0.0.2",
    }


def test_resource_field_refs_round_up_by_divisor_and_fall_back_to_allocatable():
    ctr = _container(
        [
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "CPU_MILLIS",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
            },
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
            {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
            {
                "name": "EPH",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}},
            },
        ],
        resources={"limits": {"cpu": "250m", "memory": "100Mi"}, "requests": {"memory": "64Mi"}},
    )
    env = _resolve(ctr, allocatable={"ephemeral-storage": Decimal(10**9), "cpu": Decimal(4)})
    assert env == {
        "CPU_LIMIT": "1",
        "CPU_MILLIS": "250",
        "MEM_MI": "100",
        "MEM_REQ": str(64 * 2**20),
        "CPU_REQ": "0",
        "EPH": str(10**9),
    }


def test_resource_field_ref_without_a_limit_uses_node_allocatable():
    ctr = _container(
        [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
    )
    assert _resolve(ctr, allocatable={"cpu": Decimal("3.5")}) == {"CPU": "4"}


def test_resource_field_ref_naming_an_unknown_container_is_a_config_error():
    ctr = _container(
        [
            {
                "name": "X",
                "valueFrom": {
                    "resourceFieldRef": {"resource": "limits.cpu", "containerName": "ghost"}
                },
            }
        ]
    )
    with pytest.raises(ContainerConfigError, match="container ghost not found"):
        _resolve(ctr)


def test_command_and_args_expand_against_the_full_environment():
    command, args = expand_command(
        ["/bin/$(SHELL_NAME)", "-c"],
        ["echo $(GREETING) $(UNSET) $$(GREETING)"],
        env=[("SHELL_NAME", "sh"), ("GREETING", "hi")],
    )
    assert command == ("/bin/sh", "-c")
    assert args == ("echo hi $(UNSET) $(GREETING)",)
    assert expand_command(None, None, env={}) == ((), ())


def test_exec_probe_commands_see_only_static_values():
    ctr = _container(
        [
            {"name": "A", "value": "a"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ]
    )
    assert expand_command_only_static(["$(A)", "$(NODE)", "$(B)"], ctr.env or []) == [
        "a",
        "",
        "$(B)",
    ]
