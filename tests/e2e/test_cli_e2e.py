"""The CLI against a live daemon, as a user types it: get pods, describe pod, logs, validate,
create pod; and status and events that outlive a daemon restart. Issue 2, "Done means".

Output is compared with kubectl's layout (KUBELET.md 1.3 for the STATUS column; kubectl's
tabwriter: ``get`` pads columns to the widest cell + 3, at least 6; ``describe`` + 2).
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon
from tests.e2e.pods import container, pod_yaml, status_of

# --- get pods ---------------------------------------------------------------------------------

GET_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def kubectl_table(rows: list[list[str]]) -> list[str]:
    """Rows laid out as kubectl's printer does (tabwriter minwidth 6, padding 3)."""
    widths = [max(6, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    return [
        "".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[-1]
        for row in rows
    ]


def parse_get_pods(text: str) -> dict[str, list[str]]:
    """NAME -> [NAME, READY, STATUS, RESTARTS, AGE]; RESTARTS may hold "N (Xs ago)"."""
    lines = text.splitlines()
    assert lines and lines[0].split() == GET_HEADER, text
    rows = {}
    for line in lines[1:]:
        fields = re.split(r" {2,}", line.strip())
        assert len(fields) == 5, line
        rows[fields[0]] = fields
    return rows


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_get_pods_prints_kubectl_columns_and_status_values(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    gate = tmp_path / "gate"
    gate.mkdir()
    sleeper = container("c", "exec sleep 1000")
    pods = {
        "running": pod_yaml("running", [sleeper]),
        "pair": pod_yaml(
            "pair", [container("a", "exec sleep 1000"), container("b", "exec sleep 1000")]
        ),
        "completed": pod_yaml("completed", [container("c", "exit 0")], restart_policy="Never"),
        "errored": pod_yaml("errored", [container("c", "exit 1")], restart_policy="Never"),
        "crashing": pod_yaml("crashing", [container("c", "sleep 0.2; exit 1")]),
        "init-waiting": pod_yaml(
            "init-waiting", [sleeper], init_containers=[container("i", "exec sleep 1000")]
        ),
        "init-crashing": pod_yaml(
            "init-crashing", [sleeper], init_containers=[container("i", "sleep 0.2; exit 1")]
        ),
        "init-failed": pod_yaml(
            "init-failed",
            [sleeper],
            init_containers=[container("i", "exit 1")],
            restart_policy="Never",
        ),
        # Its postStart hook holds the container until the test opens the gate: meanwhile the
        # init container has completed and the app is not started yet.
        "initializing": pod_yaml(
            "initializing",
            [
                container(
                    "c",
                    "exec sleep 1000",
                    volumeMounts=[{"name": "gate", "mountPath": "/gate"}],
                    lifecycle={
                        "postStart": {
                            "exec": {
                                "command": [
                                    "sh",
                                    "-c",
                                    "while [ ! -e /gate/open ]; do sleep 0.1; done",
                                ]
                            }
                        }
                    },
                )
            ],
            init_containers=[container("i", "true")],
            volumes=[{"name": "gate", "hostPath": {"path": str(gate)}}],
            grace=20,
        ),
    }
    for name, text in pods.items():
        d.write_manifest(name, text)

    expected = {
        "running": ("1/1", "Running"),
        "pair": ("2/2", "Running"),
        "completed": ("0/1", "Completed"),
        "errored": ("0/1", "Error"),
        "crashing": ("0/1", "CrashLoopBackOff"),
        "init-waiting": ("0/1", "Init:0/1"),
        "init-crashing": ("0/1", "Init:CrashLoopBackOff"),
        "init-failed": ("0/1", "Init:Error"),
        "initializing": ("0/1", "PodInitializing"),
    }

    def table_as_expected() -> tuple[str, dict[str, list[str]]] | None:
        out = d.cli("get", "pods", check=True).stdout
        rows = parse_get_pods(out)
        seen = {name: (rows[d.full_name(name)][1], rows[d.full_name(name)][2]) for name in pods}
        if seen != expected:
            return None
        restarts = rows[d.full_name("crashing")][3]
        if not re.fullmatch(r"\d+ \(\d+s ago\)", restarts) or int(restarts.split()[0]) < 2:
            return None
        return out, rows

    out, rows = d.wait_for(table_as_expected, timeout=45, interval=0.2)

    lines = out.splitlines()
    assert lines[0] == kubectl_table([GET_HEADER, *(r for r in rows.values())])[0]
    assert lines == kubectl_table([GET_HEADER, *(rows[n] for n in sorted(rows))])
    assert sorted(rows) == sorted(d.full_name(n) for n in pods)  # sorted by name, as kubectl
    for name, row in rows.items():
        assert re.fullmatch(r"\d+s", row[4]), row  # AGE: all of them are seconds old
        if not name.startswith(d.full_name("crashing")) and "init-crashing" not in name:
            assert row[3] == "0", row

    # Opening the gate lets the app start: PodInitializing -> Running.
    (gate / "open").touch()
    d.wait_for(
        lambda: (
            parse_get_pods(d.cli("get", "pods", check=True).stdout)[d.full_name("initializing")][
                1:3
            ]
            == ["1/1", "Running"]
        ),
        timeout=20,
    )
    one = d.cli("get", "pods", d.full_name("running"), check=True).stdout.splitlines()
    assert [line.split()[0] for line in one] == ["NAME", d.full_name("running")]


# --- describe pod -------------------------------------------------------------------------------


DESCRIBE_SECTIONS = [
    "Name",
    "Namespace",
    "Node",
    "Start Time",
    "Labels",
    "Annotations",
    "Status",
    "IP",
    "IPs",
    "Init Containers",
    "Containers",
    "Conditions",
    "Volumes",
    "QoS Class",
    "Node-Selectors",
    "Tolerations",
    "Events",
]


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_describe_pod_shows_kubectl_sections_last_state_and_the_events_table(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest(
        "flaky",
        pod_yaml(
            "flaky",
            [
                container(
                    "c",
                    "echo oops; sleep 0.2; exit 1",
                    env=[{"name": "MODE", "value": "test"}],
                    volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                )
            ],
            init_containers=[container("setup", "true")],
            volumes=[{"name": "scratch", "emptyDir": {}}],
            labels={"app": "flaky"},
        ),
    )
    d.wait_for(
        lambda: (
            (c := d.container_status("flaky", "c"))["restartCount"] >= 2
            and c["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        ),
        timeout=30,
    )
    full = d.full_name("flaky")

    def described() -> str | None:
        out = d.cli("describe", "pod", full, check=True).stdout
        # The snapshot we want: waiting in back-off, with a BackOff event seen twice or more.
        if "      Reason:       CrashLoopBackOff" not in out:
            return None
        if not re.search(r"BackOff\s+\S+ \(x\d+ over \S+\)", out):
            return None
        return out

    out = d.wait_for(described, timeout=30, interval=0.2)
    lines = out.splitlines()
    uid = d.pod("flaky")["metadata"]["uid"]

    sections = [m.group(1) for line in lines if (m := re.match(r"^([A-Z][\w -]*):", line))]
    assert sections == DESCRIBE_SECTIONS, out
    assert lines[0] == f"Name:         {full}"
    assert "Namespace:    default" in lines
    assert f"Node:         {d.node_name}/{d.pod('flaky')['status']['hostIP']}" in lines
    assert "Labels:       app=flaky" in lines
    assert "Status:       Running" in lines

    containers = lines[lines.index("Containers:") :]
    assert containers[1] == "  c:"
    block = containers[: containers.index("Conditions:")]
    for expected in [
        "    State:          Waiting",
        "      Reason:       CrashLoopBackOff",
        "    Last State:     Terminated",
        "      Reason:       Error",
        "      Exit Code:    1",
        "    Ready:          False",
        "      MODE:  test",
    ]:
        assert expected in block, f"{expected!r} not in:\n" + "\n".join(block)
    assert block.index("    State:          Waiting") < block.index(
        "    Last State:     Terminated"
    )
    assert any(re.fullmatch(r"    Restart Count:  \d+", line) for line in block)
    assert any(
        re.fullmatch(r"      Started:      \w{3}, \d\d \w{3} \d{4} [\d:]{8} \+0000", x)
        for x in block
    )
    assert any(line.startswith("      /scratch from scratch (rw)") for line in block)

    init = lines[lines.index("Init Containers:") : lines.index("Containers:")]
    assert "  setup:" in init
    assert "    State:          Terminated" in init
    assert "      Reason:       Completed" in init
    assert "      Exit Code:    0" in init

    events = lines[lines.index("Events:") + 1 :]
    header, rule = events[0], events[1]
    assert header.split() == ["Type", "Reason", "Age", "From", "Message"]
    assert rule.split() == ["----", "------", "----", "----", "-------"]
    columns = [header.index(word) for word in ("Type", "Reason", "Age", "From", "Message")]
    assert columns[0] == 2
    for row in events[1:]:  # the rule and every event line up under the header
        for col in columns:
            assert row[col] != " " and row[col - 1] == " ", f"misaligned:\n{header}\n{row}"
    backoff = next(row for row in events if " BackOff " in row)
    assert re.fullmatch(
        r"  Warning  BackOff +\d+s \(x\d+ over \d+s\) +kubelet +"
        + re.escape(
            "spec.containers{c}: "
            f"Back-off restarting failed container c in pod {full}_default({uid})"
        ),
        backoff,
    ), backoff

    missing = d.cli("describe", "pod", "nope")
    assert missing.returncode == 1
    assert 'pods "nope" not found' in missing.stderr


# --- logs -------------------------------------------------------------------------------------


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_logs_current_and_previous_instance_and_container_errors(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    out = tmp_path / "out"
    out.mkdir()
    # Fails on its first run only: the current instance and the previous one say different things.
    once = (
        "if [ -e /out/ran ]; then echo second run; exec sleep 1000; fi; "
        "touch /out/ran; echo first run; echo to stderr >&2; exit 1"
    )
    d.write_manifest(
        "two",
        pod_yaml(
            "two",
            [
                container("a", once, volumeMounts=[{"name": "out", "mountPath": "/out"}]),
                container("b", "echo b says hi; exec sleep 1000"),
            ],
            volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
            restart_policy="OnFailure",
        ),
    )
    d.wait_for_pod(
        "two",
        lambda p: (
            status_of(p, "a")["restartCount"] == 1 and "running" in status_of(p, "a")["state"]
        ),
    )
    full = d.full_name("two")

    def current_log() -> subprocess.CompletedProcess[str] | None:
        result = d.cli("logs", full, "-c", "a")
        return result if result.stdout else None

    current = d.wait_for(current_log)
    assert (current.returncode, current.stdout) == (0, "second run\n")
    previous = d.cli("logs", full, "-c", "a", "-p")
    assert previous.returncode == 0
    assert previous.stdout.splitlines() == ["first run", "to stderr"]
    assert d.cli("logs", full, "-c", "b", check=True).stdout == "b says hi\n"

    no_previous = d.cli("logs", full, "-c", "b", "-p")
    assert no_previous.returncode == 1
    assert no_previous.stdout == ""
    assert f'previous terminated container "b" in pod "{full}" not found' in no_previous.stderr

    bad_container = d.cli("logs", full, "-c", "nope")
    assert bad_container.returncode == 1
    # kubelet's own API answer (server.go getContainerLogs), as kubectl prints a 404.
    assert bad_container.stderr.strip() == (
        f'Error from server (NotFound): container "nope" not found in pod "{full}"'
    )

    bad_pod = d.cli("logs", "nope", "-c", "a")
    assert bad_pod.returncode == 1
    assert bad_pod.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


# --- validate -----------------------------------------------------------------------------------


def test_validate_accepts_a_good_file_and_lists_every_problem_of_a_bad_one(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    good = tmp_path / "good.yaml"
    good.write_text(pod_yaml("good", [container("c", "exec sleep 1000")]))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        pod_yaml(
            "bad",
            [
                container(
                    "c",
                    "exec sleep 1000",
                    ports=[{"containerPort": 70000}],
                    livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 0},
                    readinessProbe={"exec": {"command": ["true"]}, "failureThreshold": 0},
                )
            ],
        )
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        pod_yaml(
            "typo",
            [
                container(
                    "c",
                    "exec sleep 1000",
                    livenessProbe={"exec": {"command": ["true"]}, "periodSecond": 5},
                )
            ],
        )
    )

    ok = d.cli("validate", "--node-name", d.node_name, str(good))
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == f"{good}: valid (pod/{d.full_name('good')})\n"

    result = d.cli("validate", str(bad))
    assert (result.returncode, result.stdout) == (1, "")
    errors = result.stderr.splitlines()
    assert errors == [  # all at once, each with the file and the field path
        f"{bad}: spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive",
        f"{bad}: spec.containers[0].livenessProbe.periodSeconds: Invalid value: 0: "
        "must be greater than or equal to 1",
        f"{bad}: spec.containers[0].readinessProbe.failureThreshold: Invalid value: 0: "
        "must be greater than or equal to 1",
    ]

    typo_result = d.cli("validate", str(typo))
    assert typo_result.returncode == 1
    assert typo_result.stderr.splitlines() == [
        f'{typo}: spec.containers[0].livenessProbe: unknown field "periodSecond", '
        'did you mean "periodSeconds"?'
    ]

    every = d.cli("validate", "--node-name", d.node_name, str(good), str(bad), str(typo))
    assert every.returncode == 1
    assert every.stdout == f"{good}: valid (pod/{d.full_name('good')})\n"
    assert every.stderr.splitlines() == errors + typo_result.stderr.splitlines()

    absent = d.cli("validate", str(tmp_path / "absent.yaml"))
    assert absent.returncode == 1
    assert absent.stderr.startswith(f"{tmp_path / 'absent.yaml'}: ")


def test_validate_reports_range_and_cross_field_errors_together(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        pod_yaml(
            "bad",
            [
                container(
                    "c",
                    "exec sleep 1000",
                    ports=[{"containerPort": 70000}],
                    volumeMounts=[{"name": "missing", "mountPath": "/m"}],
                )
            ],
        )
    )
    result = d.cli("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{bad}: spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive",
        f'{bad}: spec.containers[0].volumeMounts[0].name: Not found: "missing"',
    ]


# --- create pod -------------------------------------------------------------------------------


def test_create_pod_writes_a_manifest_that_runs(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    argv = ["create", "pod", "greet", "--image", "busybox", "--env", "K=V", "--env", "K2=two"]
    argv += ["--restart", "Never", "--manifests", str(d.manifests_dir), "--", "sh", "-c"]
    created = d.cli(*argv, "echo $K $K2")
    assert (created.returncode, created.stdout) == (0, "pod/greet created\n"), created.stderr
    assert (d.manifests_dir / "greet.yaml").is_file()
    assert [p.name for p in d.manifests_dir.iterdir()] == ["greet.yaml"]  # no temp file left

    pod = d.wait_for_phase("greet", "Succeeded")
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"] == {"run": "greet"}
    assert d.cli("logs", d.full_name("greet"), check=True).stdout == "V two\n"

    again = d.cli(*argv, "echo again")
    assert again.returncode == 1
    assert 'pods "greet" already exists' in again.stderr


# --- restart ------------------------------------------------------------------------------------


def test_status_and_events_survive_a_daemon_restart(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    d.write_manifest("steady", pod_yaml("steady", [container("c", "exec sleep 1000")]))
    d.write_manifest("crashy", pod_yaml("crashy", [container("c", "sleep 0.2; exit 1")]))
    d.wait_for_phase("steady", "Running")
    backoff = d.wait_for(
        lambda: [e for e in d.events("crashy") if e["reason"] == "BackOff" and e["count"] >= 2],
        timeout=30,
    )[0]
    # Timestamps have whole seconds: let one pass, so re-recorded events could not pass for
    # persisted ones.
    first = datetime.fromisoformat(backoff["firstTimestamp"].replace("Z", "+00:00"))
    d.wait_for(lambda: datetime.now(UTC) >= first + timedelta(seconds=2), timeout=10)
    uids = {name: d.pod(name)["metadata"]["uid"] for name in ("steady", "crashy")}
    before = {
        (e["involvedObject"]["name"], e["reason"], e["involvedObject"].get("fieldPath")): e
        for e in d.events()
    }

    d.restart()

    after = {
        (e["involvedObject"]["name"], e["reason"], e["involvedObject"].get("fieldPath")): e
        for e in d.events()
    }
    for key, event in before.items():
        assert key in after, f"event {key} lost in the restart"
        assert after[key]["firstTimestamp"] == event["firstTimestamp"], key
        assert after[key]["count"] >= event["count"], key
        assert after[key]["message"] == event["message"], key
    # The pods come back (started afresh: adopting running containers is a later issue).
    pod = d.wait_for_phase("steady", "Running")
    assert pod["metadata"]["uid"] == uids["steady"]
    d.wait_for_pod("steady", lambda p: "running" in status_of(p, "c")["state"])
    assert d.pod("crashy")["metadata"]["uid"] == uids["crashy"]
    listing = d.cli("get", "pods", check=True).stdout
    assert d.full_name("steady") in listing and d.full_name("crashy") in listing
