"""kubelet's resource arithmetic, value by value (api.resources)."""

from __future__ import annotations

import pytest

from minikubelet.api.model import PodSpec
from minikubelet.api.resources import (
    QOSClass,
    container_resources,
    cpu_max,
    memory_max,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
    oom_score_adj,
    pod_limits,
    pod_requests,
    qos_class,
    resource_config_for_pod,
    shares_to_weight,
)

MI = 1024 * 1024
GI = 1024 * MI


def c(name: str = "c", **resources: dict[str, object]) -> dict[str, object]:
    return {"name": name, "resources": resources} if resources else {"name": name}


def spec(*containers: dict[str, object], init: list[dict[str, object]] | None = None) -> PodSpec:
    raw: dict[str, object] = {"containers": list(containers) or [c()]}
    if init is not None:
        raw["initContainers"] = init
    return PodSpec.model_validate(raw)


GUARANTEED = {"cpu": "500m", "memory": "64Mi"}


# --- QoS ---------------------------------------------------------------------------------------


def test_qos_no_resources_anywhere_is_best_effort() -> None:
    assert qos_class(spec(c("a"), c("b"))) is QOSClass.BEST_EFFORT


def test_qos_limits_only_default_requests_and_make_guaranteed() -> None:
    assert qos_class(spec(c(limits=GUARANTEED))) is QOSClass.GUARANTEED


def test_qos_equal_requests_and_limits_in_every_container_is_guaranteed() -> None:
    pod = spec(c("a", limits=GUARANTEED, requests=GUARANTEED), c("b", limits=GUARANTEED))
    assert qos_class(pod) is QOSClass.GUARANTEED


def test_qos_requests_below_limits_is_burstable() -> None:
    pod = spec(c(limits=GUARANTEED, requests={"cpu": "100m", "memory": "64Mi"}))
    assert qos_class(pod) is QOSClass.BURSTABLE


def test_qos_cpu_limit_without_memory_limit_is_burstable() -> None:
    assert qos_class(spec(c(limits={"cpu": "1"}))) is QOSClass.BURSTABLE


def test_qos_one_container_without_limits_makes_pod_burstable() -> None:
    assert qos_class(spec(c("a", limits=GUARANTEED), c("b"))) is QOSClass.BURSTABLE


def test_qos_init_container_without_limits_makes_guaranteed_pod_burstable() -> None:
    pod = spec(c("app", limits=GUARANTEED), init=[c("setup")])
    assert qos_class(pod) is QOSClass.BURSTABLE


def test_qos_init_container_with_requests_makes_best_effort_pod_burstable() -> None:
    pod = spec(c("app"), init=[c("setup", requests={"memory": "10Mi"})])
    assert qos_class(pod) is QOSClass.BURSTABLE


def test_qos_guaranteed_init_and_app_containers_stay_guaranteed() -> None:
    pod = spec(c("app", limits=GUARANTEED), init=[c("setup", limits={"cpu": "1", "memory": "1Gi"})])
    assert qos_class(pod) is QOSClass.GUARANTEED


def test_qos_zero_quantities_and_other_resources_do_not_count() -> None:
    pod = spec(c(requests={"cpu": "0", "ephemeral-storage": "1Gi"}, limits={"memory": 0}))
    assert qos_class(pod) is QOSClass.BEST_EFFORT


# --- CPU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milli", "shares"),
    [(0, 2), (1, 2), (100, 102), (200, 204), (250, 256), (1000, 1024), (2000, 2048)],
)
def test_milli_cpu_to_shares(milli: int, shares: int) -> None:
    assert milli_cpu_to_shares(milli) == shares


def test_shares_are_capped_at_262144() -> None:
    assert milli_cpu_to_shares(300_000) == 262144


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (102, 4), (204, 8), (256, 10), (512, 20), (1024, 39), (2048, 79), (262144, 10000)],
)
def test_shares_to_weight_is_kubelets_integer_formula(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    ("milli", "quota"), [(0, 0), (5, 1000), (10, 1000), (100, 10000), (200, 20000), (1000, 100000)]
)
def test_milli_cpu_to_quota_has_a_1ms_floor(milli: int, quota: int) -> None:
    assert milli_cpu_to_quota(milli) == quota


def test_cpu_max_and_memory_max_lines() -> None:
    assert cpu_max(20000) == "20000 100000"
    assert cpu_max(None) == "max 100000"
    assert memory_max(32 * MI) == "33554432"
    assert memory_max(None) == "max"


def test_container_200m_limit_is_20ms_per_100ms_and_request_defaults_to_it() -> None:
    res = container_resources(spec(c(limits={"cpu": "200m"})).containers[0])
    assert (res.cpu_request_milli, res.cpu_limit_milli) == (200, 200)
    assert (res.cpu_shares, res.cpu_weight, res.cpu_max) == (204, 8, "20000 100000")
    assert res.memory_max == "max"


def test_container_250m_request_without_limit_is_not_throttled() -> None:
    res = container_resources(spec(c(requests={"cpu": "250m"})).containers[0])
    assert (res.cpu_shares, res.cpu_weight, res.cpu_quota, res.cpu_max) == (
        256,
        10,
        None,
        "max 100000",
    )


def test_container_one_cpu_and_100m() -> None:
    one = container_resources(spec(c(requests={"cpu": 1}, limits={"cpu": "1"})).containers[0])
    assert (one.cpu_weight, one.cpu_max) == (39, "100000 100000")
    small = container_resources(spec(c(limits={"cpu": "100m"})).containers[0])
    assert (small.cpu_shares, small.cpu_weight, small.cpu_max) == (102, 4, "10000 100000")


def test_container_zero_request_takes_shares_from_its_limit() -> None:
    res = container_resources(spec(c(requests={"cpu": "0"}, limits={"cpu": "500m"})).containers[0])
    assert (res.cpu_request_milli, res.cpu_shares, res.cpu_weight) == (0, 512, 20)


def test_container_without_resources_gets_minimum_weight_and_no_limits() -> None:
    res = container_resources(spec(c()).containers[0])
    assert (res.cpu_shares, res.cpu_weight, res.cpu_max, res.memory_max) == (
        2,
        1,
        "max 100000",
        "max",
    )


def test_container_memory_rounds_up_to_whole_bytes() -> None:
    res = container_resources(
        spec(c(limits={"memory": "32Mi"}, requests={"memory": "0.5"})).containers[0]
    )
    assert (res.memory_limit, res.memory_request, res.memory_max) == (32 * MI, 1, "33554432")


# --- oom_score_adj -----------------------------------------------------------------------------


def test_oom_score_adj_guaranteed_and_best_effort() -> None:
    g = spec(c(limits=GUARANTEED))
    assert oom_score_adj(g, g.containers[0], node_memory=8 * GI) == -997
    b = spec(c())
    assert oom_score_adj(b, b.containers[0], node_memory=8 * GI) == 1000


@pytest.mark.parametrize(
    ("mem_request", "expected"),
    [("1Gi", 900), ("5Gi", 500), ("10Gi", 3), ("20Gi", 3), ("1", 999), ("1Mi", 1000 - 0 - 1)],
)
def test_oom_score_adj_burstable_scales_with_memory_request(
    mem_request: str, expected: int
) -> None:
    pod = spec(c(requests={"memory": mem_request}, limits={"cpu": "1"}))
    assert oom_score_adj(pod, pod.containers[0], node_memory=10 * GI) == expected


def test_oom_score_adj_burstable_without_memory_request_is_999() -> None:
    pod = spec(c(requests={"cpu": "100m"}))
    assert oom_score_adj(pod, pod.containers[0], node_memory=10 * GI) == 999


def test_oom_score_adj_sidecar_is_no_higher_than_smallest_regular_container() -> None:
    sidecar = {**c("log", requests={"memory": "1Gi"}), "restartPolicy": "Always"}
    pod = spec(c("app", requests={"memory": "2Gi"}), init=[sidecar])
    assert oom_score_adj(pod, pod.containers[0], node_memory=10 * GI) == 800
    assert oom_score_adj(pod, pod.init_containers[0], node_memory=10 * GI) == 800  # not 900


# --- pod totals and ResourceConfigForPod -------------------------------------------------------


def test_pod_requests_add_sidecars_and_take_max_of_init_containers() -> None:
    sidecar = {**c("log", requests={"cpu": "100m"}), "restartPolicy": "Always"}
    pod = spec(
        c("a", requests={"cpu": "200m"}),
        c("b", requests={"cpu": "300m"}),
        init=[sidecar, c("migrate", requests={"cpu": "2"})],
    )
    # regular 500m + sidecar 100m = 600m; the migration runs beside the sidecar: 2100m
    assert pod_requests(pod)["cpu"] * 1000 == 2100
    small = spec(c("a", requests={"cpu": "200m"}), init=[sidecar, c("m", requests={"cpu": "50m"})])
    assert pod_requests(small)["cpu"] * 1000 == 300


def test_resource_config_guaranteed_sets_shares_quota_and_memory() -> None:
    pod = spec(c("a", limits=GUARANTEED), c("b", limits=GUARANTEED))
    cfg = resource_config_for_pod(pod)
    assert cfg.qos is QOSClass.GUARANTEED
    assert (cfg.cpu_shares, cfg.cpu_weight) == (1024, 39)
    assert (cfg.cpu_max, cfg.memory_max) == ("100000 100000", str(128 * MI))


def test_resource_config_burstable_with_all_limits_sets_quota_and_memory() -> None:
    pod = spec(
        c("a", requests={"cpu": "100m"}, limits={"cpu": "200m", "memory": "32Mi"}),
        c("b", limits={"cpu": "300m", "memory": "32Mi"}),
    )
    cfg = resource_config_for_pod(pod)
    assert cfg.qos is QOSClass.BURSTABLE
    assert cfg.cpu_shares == milli_cpu_to_shares(400)
    assert (cfg.cpu_max, cfg.memory_max) == ("50000 100000", str(64 * MI))


def test_resource_config_burstable_skips_limits_some_container_lacks() -> None:
    pod = spec(
        c("a", limits={"cpu": "200m", "memory": "32Mi"}),
        c("b", limits={"cpu": "300m"}),
    )
    cfg = resource_config_for_pod(pod)
    assert cfg.cpu_max == "50000 100000"
    assert (cfg.memory_limit, cfg.memory_max) == (None, None)
    only_memory = resource_config_for_pod(spec(c("a", limits={"memory": "32Mi"}), c("b")))
    assert (only_memory.cpu_max, only_memory.memory_max) == (None, None)
    assert only_memory.cpu_shares == 2


def test_resource_config_init_container_without_limit_drops_pod_limit() -> None:
    pod = spec(c("app", limits={"cpu": "1"}), init=[c("setup", requests={"cpu": "100m"})])
    assert resource_config_for_pod(pod).cpu_max is None


def test_resource_config_pod_limit_is_max_of_init_and_sum_of_regular() -> None:
    pod = spec(
        c("app", limits={"cpu": "200m", "memory": "32Mi"}),
        init=[c("setup", limits={"cpu": "1", "memory": "16Mi"})],
    )
    cfg = resource_config_for_pod(pod)
    assert (cfg.cpu_max, cfg.memory_max) == ("100000 100000", str(32 * MI))
    assert pod_limits(pod)["memory"] == 32 * MI


def test_resource_config_best_effort_gets_minimum_shares_only() -> None:
    cfg = resource_config_for_pod(spec(c("a"), c("b")))
    assert (cfg.qos, cfg.cpu_shares, cfg.cpu_weight) == (QOSClass.BEST_EFFORT, 2, 1)
    assert (cfg.cpu_max, cfg.memory_max) == (None, None)
