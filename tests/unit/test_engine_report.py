"""The engine report's once-only warning and its health line, and podman's errors turned into
what to install (podman_engine.explain), with podman 4.3's own texts."""

from __future__ import annotations

from minikubelet.runtime.engine import EngineReport
from minikubelet.runtime.podman_engine import CATATONIT, INFRA_IMAGE, explain, infra_problem

# What podman 4.3.1 answers to POST /libpod/pods/create, seen on Debian 12 hosts:
NO_CATATONIT = (
    'failed to make pod: building local pause image: finding pause binary: exec: "catatonit": '
    "executable file not found in $PATH"
)
INFRA_PULL = (
    "failed to make pod: initializing source docker://localhost:1/minikubelet/pause:none: "
    'pinging container registry localhost:1: Get "https://localhost:1/v2/": dial tcp '
    "127.0.0.1:1: connect: connection refused"
)


def test_a_problem_is_warned_once_until_it_changes_or_clears() -> None:
    said: list[tuple[str, str]] = []
    report = EngineReport("podman", warn=lambda runtime, problem: said.append((runtime, problem)))
    assert report.health() == ("runtime-podman", True, "")

    report.missing("catatonit is missing")
    report.missing("catatonit is missing")
    assert said == [("podman", "catatonit is missing")]
    assert report.health() == ("runtime-podman", True, "catatonit is missing")

    # Unreachable for a while, then the same problem after the reconnect: not news.
    report.waiting("podman does not answer on /run/podman/podman.sock")
    assert report.health()[2] == "podman does not answer on /run/podman/podman.sock"
    report.missing("catatonit is missing")
    assert len(said) == 1

    report.ready()
    assert report.health() == ("runtime-podman", True, "") and report.problem is None
    report.missing("catatonit is missing")  # back again after it was fixed: said again
    report.missing("runc is missing")  # another problem: said too
    assert [p for _, p in said] == ["catatonit is missing"] * 2 + ["runc is missing"]


def test_podmans_errors_are_explained_with_the_package_to_install() -> None:
    assert explain(NO_CATATONIT) == CATATONIT
    assert CATATONIT.endswith("apt-get install catatonit")
    assert explain(INFRA_PULL) == INFRA_IMAGE
    assert "apt-get install catatonit" in INFRA_IMAGE
    assert explain('default OCI runtime "runc" not found: invalid argument') == (
        "podman cannot find the OCI runtime runc: apt-get install runc"
    )
    # Errors that are not about the host say nothing more.
    assert explain("creating container storage: the container name is already in use") is None
    assert explain("initializing source docker://example/app:1: pinging registry") is None


def test_the_infra_problem_quotes_podman_then_says_what_to_do() -> None:
    assert infra_problem(NO_CATATONIT) == (
        f"podman cannot make pods' infra containers: {NO_CATATONIT}; {CATATONIT}"
    )
    assert infra_problem("failed to make pod: disk full") == (
        "podman cannot make pods' infra containers: failed to make pod: disk full"
    )
