"""Admission arithmetic: requests against allocatable, with the scheduler's wording."""

from __future__ import annotations

from decimal import Decimal

import yaml

from minikubelet.api.model import PodSpec
from minikubelet.pods.admission import Admission, unschedulable_message


def spec(*requests: dict[str, str], init: dict[str, str] | None = None) -> PodSpec:
    raw = {
        "containers": [
            {"name": f"c{i}", "resources": {"requests": r}} for i, r in enumerate(requests)
        ]
    }
    if init is not None:
        raw["initContainers"] = [{"name": "init", "resources": {"requests": init}}]
    return PodSpec.model_validate(yaml.safe_load(yaml.safe_dump(raw)))


NODE = {"cpu": Decimal(2), "memory": Decimal(4 * 2**30)}


def test_pods_are_admitted_while_their_requests_fit():
    admission = Admission(NODE)
    assert admission.try_admit("a", spec({"cpu": "1500m"}), wake=lambda: None) == []
    assert admission.try_admit("b", spec({"cpu": "500m", "memory": "1Gi"}), wake=lambda: None) == []
    assert admission.in_use() == {"cpu": Decimal(2), "memory": Decimal(2**30)}


def test_a_pod_that_does_not_fit_names_what_is_missing_and_is_woken_on_release():
    admission = Admission(NODE)
    woken = []
    admission.try_admit("a", spec({"cpu": "1500m", "memory": "3Gi"}), wake=lambda: None)
    missing = admission.try_admit(
        "b", spec({"cpu": "1", "memory": "2Gi"}), wake=lambda: woken.append("b")
    )
    assert missing == ["cpu", "memory"]
    assert unschedulable_message(missing) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    )
    admission.release("a")
    assert woken == ["b"]
    assert admission.try_admit("b", spec({"cpu": "1", "memory": "2Gi"}), wake=lambda: None) == []


def test_init_containers_count_as_kubelet_pod_requests():
    admission = Admission(NODE)
    big_init = spec({"cpu": "100m"}, init={"cpu": "3"})
    assert admission.try_admit("a", big_init, wake=lambda: None) == ["cpu"]


def test_best_effort_pods_always_fit():
    admission = Admission({"cpu": Decimal(0), "memory": Decimal(0)})
    assert admission.try_admit("a", spec({}), wake=lambda: None) == []
