"""The real kubectl against the real daemon: every read verb a user runs, through the kubeconfig
the daemon writes (server, token, CA).

What kubectl prints comes from the API (server-side Tables, objects, events, logs), so these
tests compare it with what the built-in CLI prints from the same daemon, and with what the
pods are doing.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import Daemon
from tests.e2e.kubectl import Kubectl, needs_kubectl
from tests.e2e.pods import container, pod_yaml

pytestmark = needs_kubectl

TICKER = pod_yaml(
    "ticker",
    [
        container(
            "app",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done",
            resources={"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
            env=[{"name": "DB_PASSWORD", "value": "hunter2"}],
        )
    ],
    labels={"app": "ticker", "tier": "back"},
)
TWO = pod_yaml(
    "two",
    [
        container("main", "echo main says hi; exec sleep 600"),
        container("side", "echo side says hi; exec sleep 600"),
    ],
    labels={"app": "two"},
)
DONE = pod_yaml("done", [container("job", "echo finished")], restart_policy="Never")


def without_age(text: str) -> list[list[str]]:
    """Table rows as cells, the AGE column dropped (it may tick between two commands)."""
    lines = text.splitlines()
    header = lines[0].split()
    age = header.index("AGE")
    return [cells[:age] + cells[age + 1 :] for cells in (line.split() for line in lines)]


@pytest.fixture
def node(minikubelet_daemon: Daemon) -> Daemon:
    d = minikubelet_daemon
    d.write_manifest("ticker", TICKER)
    d.write_manifest("two", TWO)
    d.write_manifest("done", DONE)
    d.wait_for_phase("ticker", "Running")
    d.wait_for_phase("two", "Running")
    d.wait_for_phase("done", "Succeeded")
    d.wait_for(lambda: "tick 4\n" in d.logs("ticker", "app"))
    return d


@pytest.fixture
def kubectl(node: Daemon, tmp_path: Path) -> Kubectl:
    return Kubectl(node, tmp_path / "home")


def test_kubectl_get_pods_prints_the_cli_table_and_filters_like_an_api_server(
    node: Daemon, kubectl: Kubectl
) -> None:
    ours = node.cli("get", "pods", check=True).stdout
    theirs = kubectl("get", "pods")
    assert without_age(theirs) == without_age(ours)
    assert theirs.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]

    wide = kubectl("get", "pods", "-o", "wide")
    assert wide.splitlines()[0].split()[-6:] == [
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert without_age(wide) == without_age(
        node.cli("get", "pods", "-o", "wide", check=True).stdout
    )

    def names(*args: str) -> list[str]:
        out = kubectl.run("get", "pods", "-o", "name", *args).stdout
        return sorted(out.split())

    ticker, two, done = (f"pod/{node.full_name(n)}" for n in ("ticker", "two", "done"))
    assert names() == sorted([ticker, two, done])
    assert names("-l", "app=ticker") == [ticker]
    assert names("-l", "app in (ticker, two),tier!=back") == [two]
    assert names("-l", "!tier") == sorted([two, done])
    assert names("--field-selector", "status.phase=Running") == sorted([ticker, two])
    assert names("--field-selector", "status.phase!=Running") == [done]
    assert names("--field-selector", f"metadata.name={node.full_name('two')}") == [two]
    assert names("--field-selector", f"spec.nodeName={node.node_name}") == sorted(
        [ticker, two, done]
    )
    assert names("--field-selector", "spec.nodeName=elsewhere") == []
    assert names("-A") == sorted([ticker, two, done])

    bad = kubectl.run("get", "pods", "--field-selector", "spec.image=x", check=False)
    assert bad.returncode == 1
    assert "field label not supported: spec.image" in bad.stderr

    one = kubectl("get", "pod", node.full_name("done"))
    assert one.splitlines()[1].split()[:3] == [node.full_name("done"), "0/1", "Completed"]
    missing = kubectl.run("get", "pod", "nope", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        'Error from server (NotFound): pods "nope" not found\n',
    )


def test_kubectl_get_pods_json_and_yaml_are_the_api_objects(node: Daemon, kubectl: Kubectl) -> None:
    listed = json.loads(kubectl("get", "pods", "-o", "json"))
    assert listed["kind"] == "List"
    by_name = {p["metadata"]["name"]: p for p in listed["items"]}
    pod = by_name[node.full_name("ticker")]
    assert (pod["kind"], pod["apiVersion"]) == ("Pod", "v1")
    assert int(pod["metadata"]["resourceVersion"]) > 0
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["containers"][0]["env"] == [{"name": "DB_PASSWORD", "value": "hunter2"}]

    one = yaml.safe_load(kubectl("get", "pod", node.full_name("two"), "-o", "yaml"))
    assert one["metadata"]["labels"] == {"app": "two"}
    assert [c["name"] for c in one["status"]["containerStatuses"]] == ["main", "side"]
    assert one == node.pod("two") | {"metadata": one["metadata"]}


def test_kubectl_describe_pod_is_byte_identical_to_minikubelet_describe(
    node: Daemon, kubectl: Kubectl
) -> None:
    for name in ("ticker", "two", "done"):
        full = node.full_name(name)
        for _ in range(5):
            # Ages tick on whole seconds (timestamps have no fraction): start both commands
            # just after one, so that they see the same second.
            time.sleep(1.02 - time.time() % 1)
            theirs = kubectl.run("describe", "pod", full, check=True)
            ours = node.cli("describe", "pod", full, env={"TZ": "UTC"}, check=True)
            if theirs.stdout == ours.stdout:
                break
        assert theirs.stdout == ours.stdout, (
            f"kubectl:\n{theirs.stdout}\nminikubelet:\n{ours.stdout}"
        )
        assert "Events:" in theirs.stdout
    # kubectl's prefix match finds the static pod by its manifest's name, as the CLI does.
    assert kubectl("describe", "pod", "ticker").startswith(
        f"Name:         {node.full_name('ticker')}\n"
    )


def test_kubectl_logs_container_tail_timestamps_previous_and_follow(
    node: Daemon, kubectl: Kubectl
) -> None:
    two = node.full_name("two")
    assert kubectl("logs", two, "-c", "side") == "side says hi\n"
    both = kubectl.run("logs", two)  # kubectl picks the first container and says so
    assert both.stdout == "main says hi\n"
    assert 'Defaulted container "main" out of: main, side' in both.stderr
    assert kubectl("logs", node.full_name("done")) == "finished\n"

    ticker = node.full_name("ticker")
    tail = kubectl("logs", ticker, "--tail", "2").splitlines()
    assert len(tail) == 2 and all(re.fullmatch(r"tick \d+", line) for line in tail)
    stamped = kubectl("logs", ticker, "--tail", "3", "--timestamps").splitlines()
    assert len(stamped) == 3
    for line in stamped:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z tick \d+", line), line

    previous = kubectl.run("logs", ticker, "-p", check=False)
    assert previous.returncode == 1
    assert f'previous terminated container "app" in pod "{ticker}" not found' in previous.stderr

    follow = kubectl.popen("logs", "-f", ticker, "--tail", "1")
    try:
        assert follow.stdout is not None
        seen = [follow.stdout.readline() for _ in range(4)]
        numbers = [int(line.split()[1]) for line in seen]
        assert numbers == list(range(numbers[0], numbers[0] + 4)), seen  # live, in order
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=10)


def test_kubectl_logs_previous_instance_after_a_restart(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    d.write_manifest(
        "flaky",
        pod_yaml("flaky", [container("c", 'echo "run $(date +%s%N)"; sleep 0.5; exit 1')]),
    )
    d.wait_for(lambda: d.container_status("flaky", "c")["restartCount"] >= 1, timeout=30)
    kubectl = Kubectl(d, tmp_path / "home")
    previous = kubectl("logs", d.full_name("flaky"), "-p")
    assert re.fullmatch(r"run \d+\n", previous)


def test_kubectl_get_events_and_events_for_a_pod(node: Daemon, kubectl: Kubectl) -> None:
    table = kubectl("get", "events")
    header, *rows = table.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    ticker = node.full_name("ticker")
    assert any(
        row.split()[1:4] == ["Normal", "Started", f"pod/{ticker}"]
        and row.endswith("Started container app")
        for row in rows
    ), table

    wide = kubectl("get", "events", "-o", "wide").splitlines()[0]
    assert "SUBOBJECT" in wide and "FIRST SEEN" in wide

    for_pod = kubectl("events", "--for", f"pod/{ticker}")
    header, *rows = for_pod.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows and all(f"Pod/{ticker}" in row for row in rows), for_pod
    assert any("Started container app" in row for row in rows)
    assert not any(node.full_name("two") in row for row in rows)


def test_kubectl_get_and_describe_node_show_its_pods_requests_and_limits(
    node: Daemon, kubectl: Kubectl
) -> None:
    header, row = kubectl("get", "nodes").splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    cells = row.split()
    assert cells[:3] == [node.node_name, "Ready", "<none>"]
    assert cells[4].startswith("v1.37.0+minikubelet")

    text = kubectl("describe", "node", node.node_name)
    assert text.startswith(f"Name:               {node.node_name}\n")
    assert re.search(r"\n  Ready +True .* KubeletReady +kubelet is posting ready status\n", text)
    assert re.search(r"\nCapacity:\n  cpu: +\d+\n", text)
    assert "\nAllocatable:\n" in text
    assert "Non-terminated Pods:          (2 in total)" in text  # "done" has Succeeded
    ticker_row = next(line for line in text.splitlines() if node.full_name("ticker") in line)
    assert ticker_row.split()[:8] == [
        "default",
        node.full_name("ticker"),
        "100m",
        f"({ticker_row.split()[3][1:-1]})",
        "0",
        "(0%)",
        "32Mi",
        ticker_row.split()[7],
    ]
    assert "64Mi" in ticker_row.split()
    assert re.search(r"\n  memory +32Mi \(\d+%\) +64Mi \(\d+%\)\n", text)


def test_kubectl_wait_for_ready_returns_when_the_pod_becomes_ready(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    kubectl = Kubectl(d, tmp_path / "home")
    d.write_manifest(
        "slow",
        pod_yaml(
            "slow",
            [
                container(
                    "app",
                    "sleep 2; touch /tmp/ready; exec sleep 600",
                    readinessProbe={
                        "exec": {"command": ["test", "-e", "/tmp/ready"]},
                        "periodSeconds": 1,
                    },
                )
            ],
        ),
    )
    d.wait_for_phase("slow", "Running")
    assert d.pod("slow")["status"]["containerStatuses"][0]["ready"] is False
    started = time.monotonic()
    result = kubectl.run(
        "wait", "--for=condition=Ready", f"pod/{d.full_name('slow')}", "--timeout=30s"
    )
    assert result.stdout == f"pod/{d.full_name('slow')} condition met\n"
    assert d.pod("slow")["status"]["containerStatuses"][0]["ready"] is True
    assert time.monotonic() - started < 25


def test_kubectl_get_watch_streams_added_modified_and_deleted(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    kubectl = Kubectl(d, tmp_path / "home")
    watch = kubectl.popen("get", "pods", "-w", "--output-watch-events")
    try:
        assert watch.stdout is not None
        time.sleep(1)  # kubectl lists (nothing), then watches
        d.write_manifest("short", pod_yaml("short", [container("c", "exec sleep 600")]))
        d.wait_for_phase("short", "Running")
        header = watch.stdout.readline().split()
        assert header == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        d.remove_manifest("short")
        d.wait_for_gone("short")
        seen: list[list[str]] = []
        while not seen or seen[-1][0] != "DELETED":
            line = watch.stdout.readline()
            assert line, f"the watch ended early: {seen}"
            seen.append(line.split())
    finally:
        watch.send_signal(signal.SIGINT)
        watch.communicate(timeout=10)
    full = d.full_name("short")
    assert all(cells[1] == full for cells in seen)
    assert seen[0][0] == "ADDED"
    assert ["MODIFIED", full, "1/1", "Running"] in [cells[:4] for cells in seen]


def test_kubectl_explain_and_apply_need_no_validate_flag(
    node: Daemon, kubectl: Kubectl, tmp_path: Path
) -> None:
    explained = kubectl("explain", "pod.spec.containers.livenessProbe")
    assert "KIND:       Pod" in explained
    assert "Periodic probe of container liveness" in explained
    assert "failureThreshold\t<integer>" in explained

    manifest = tmp_path / "new.yaml"
    manifest.write_text(pod_yaml("new", [container("c", "sleep 1")]))
    applied = kubectl.run("apply", "-f", str(manifest), check=False)
    # kubectl validated nothing itself (the server does, fieldValidation=Strict) and reached
    # the server, which refuses writes until api.writes is on.
    assert applied.returncode == 1
    assert "Forbidden" in applied.stderr and "api.writes is false" in applied.stderr
    assert "validat" not in applied.stderr.lower()


def test_kubectl_out_of_scope_answers_like_an_api_server(node: Daemon, kubectl: Kubectl) -> None:
    unknown = kubectl.run("get", "deployments", check=False)
    assert unknown.returncode == 1
    assert 'the server doesn\'t have a resource type "deployments"' in unknown.stderr
    status, body = node.request("/apis/apps/v1/namespaces/default/deployments")
    assert status == 404
    assert json.loads(body)["reason"] == "NotFound"
    status, body = node.request("/api/v1/namespaces/default/services")
    assert (status, json.loads(body)["kind"]) == (404, "Status")

    forward = kubectl.run(
        "port-forward", f"pod/{node.full_name('ticker')}", "18080:80", check=False, timeout=20
    )
    assert forward.returncode == 1
    assert "could not find the requested resource" in forward.stderr or "404" in forward.stderr

    delete = kubectl.run("delete", "pod", node.full_name("ticker"), check=False)
    assert delete.returncode == 1
    assert delete.stderr.startswith("Error from server (Forbidden):")
    assert node.pod("ticker")["status"]["phase"] == "Running"
    exec_ = kubectl.run("exec", node.full_name("ticker"), "--", "true", check=False)
    assert exec_.returncode == 1 and "forbidden" in exec_.stderr
    audit = [line for line in node.log_text().splitlines() if "minikubelet.audit" in line]
    assert any(
        f"audit: admin@127.0.0.1 delete pods default/{node.full_name('ticker')}: denied" in line
        for line in audit
    ), audit
    assert any("create pods/exec" in line and ": denied" in line for line in audit)


def test_kubectl_version_reports_the_api_version_served(node: Daemon, kubectl: Kubectl) -> None:
    out = kubectl("version", "-o", "json")
    server = json.loads(out)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "37")
    assert server["gitVersion"].startswith("v1.37.0+minikubelet-")
