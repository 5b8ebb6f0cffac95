"""kubectl's output, golden string for golden string.

The expected strings are what kubectl prints for the same objects (printers.go printPod,
describe.go describePod, Go's text/tabwriter). Lines end with ``|`` so that the trailing spaces
kubectl leaves (``Ready   False `` in Conditions, padded empty cells) stay visible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from minikubelet.api.model import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    Event,
    EventMeta,
    ObjectReference,
    PodCondition,
    PodIP,
    PodStatus,
    PodView,
)
from minikubelet.printers import (
    _tabwrite,
    describe_pod,
    describe_probe,
    format_rfc1123z,
    get_pods_table,
    human_duration,
    pod_row,
    to_json,
)

NOW = datetime(2025, 7, 3, 10, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def golden(text: str) -> str:
    return text.replace("|\n", "\n")


# --- builders ---------------------------------------------------------------------------------


def running(*, ready: bool = True, restarts: int = 0, name: str = "app") -> ContainerStatus:
    return ContainerStatus(
        name=name,
        ready=ready,
        started=True,
        restart_count=restarts,
        state=ContainerState(running=ContainerStateRunning(started_at=ago(30))),
    )


def waiting(reason: str, *, name: str = "app", restarts: int = 0) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        restart_count=restarts,
        state=ContainerState(waiting=ContainerStateWaiting(reason=reason)),
    )


def terminated(
    exit_code: int, reason: str | None = None, *, name: str = "app", signal: int | None = None
) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        state=ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=exit_code,
                reason=reason,
                signal=signal,
                started_at=ago(60),
                finished_at=ago(50),
            )
        ),
    )


def make_pod(
    *,
    name: str = "web-node1",
    phase: str = "Running",
    init: list[str] | None = None,
    sidecars: list[str] | None = None,
    containers: list[str] | None = None,
    init_statuses: list[ContainerStatus] | None = None,
    statuses: list[ContainerStatus] | None = None,
    conditions: dict[str, str] | None = None,
    created: datetime | None = None,
) -> PodView:
    init_specs: list[dict[str, object]] = [{"name": n, "image": "busybox"} for n in init or []]
    init_specs += [
        {"name": n, "image": "busybox", "restartPolicy": "Always"} for n in sidecars or []
    ]
    spec: dict[str, object] = {
        "nodeName": "node1",
        "containers": [{"name": n, "image": "busybox"} for n in containers or ["app"]],
    }
    if init_specs:
        spec["initContainers"] = init_specs
    return PodView.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": "u1",
                "creationTimestamp": (created or ago(101)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": spec,
            "status": PodStatus.model_validate(
                {
                    "phase": phase,
                    "conditions": [{"type": t, "status": s} for t, s in (conditions or {}).items()],
                    "podIP": "10.0.0.5",
                    "podIPs": [{"ip": "10.0.0.5"}],
                    "initContainerStatuses": init_statuses,
                    "containerStatuses": statuses,
                }
            ),
        }
    )


# --- HumanDuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60 + 7, "3h5m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (735 * 86400, "2y5d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: float, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_age_column_is_human_duration_of_creation_timestamp() -> None:
    assert pod_row(make_pod(created=ago(123)), now=NOW).age == "2m3s"
    assert pod_row(make_pod(created=ago(3 * 86400)), now=NOW).age == "3d"


def test_rfc1123z_is_go_format_and_zero_time_for_unset() -> None:
    assert format_rfc1123z(NOW, UTC) == "Thu, 03 Jul 2025 10:00:00 +0000"
    assert format_rfc1123z(None) == "Mon, 01 Jan 0001 00:00:00 +0000"


# --- STATUS / READY / RESTARTS ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "status", "ready"),
    [
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a", "b"],
                init_statuses=[
                    running(name="a", ready=False),
                    waiting("PodInitializing", name="b"),
                ],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:0/2",
            "0/1",
            id="Init:0/2",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a", "b"],
                init_statuses=[terminated(0, "Completed", name="a"), running(name="b")],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:1/2",
            "0/1",
            id="Init:1/2",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a"],
                init_statuses=[waiting("CrashLoopBackOff", name="a")],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:CrashLoopBackOff",
            "0/1",
            id="Init:CrashLoopBackOff",
        ),
        pytest.param(
            make_pod(
                phase="Failed",
                init=["a"],
                init_statuses=[terminated(1, "Error", name="a")],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:Error",
            "0/1",
            id="Init:Error",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a"],
                init_statuses=[terminated(3, name="a")],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:ExitCode:3",
            "0/1",
            id="Init:ExitCode",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a"],
                init_statuses=[terminated(137, name="a", signal=9)],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:Signal:9",
            "0/1",
            id="Init:Signal",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                init=["a"],
                init_statuses=[terminated(0, "Completed", name="a")],
                statuses=[waiting("PodInitializing")],
                conditions={"Initialized": "True"},
            ),
            "PodInitializing",
            "0/1",
            id="PodInitializing",
        ),
        pytest.param(
            make_pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
            "ContainerCreating",
            "0/1",
            id="ContainerCreating",
        ),
        pytest.param(
            make_pod(statuses=[waiting("CrashLoopBackOff", restarts=3)]),
            "CrashLoopBackOff",
            "0/1",
            id="CrashLoopBackOff",
        ),
        pytest.param(
            make_pod(phase="Succeeded", statuses=[terminated(0, "Completed")]),
            "Completed",
            "0/1",
            id="Completed",
        ),
        pytest.param(
            make_pod(phase="Failed", statuses=[terminated(1, "Error")]),
            "Error",
            "0/1",
            id="Error",
        ),
        pytest.param(
            make_pod(phase="Failed", statuses=[terminated(2)]),
            "ExitCode:2",
            "0/1",
            id="ExitCode",
        ),
        pytest.param(
            make_pod(phase="Failed", statuses=[terminated(143, signal=15)]),
            "Signal:15",
            "0/1",
            id="Signal",
        ),
        pytest.param(
            make_pod(statuses=[running()], conditions={"Ready": "True"}),
            "Running",
            "1/1",
            id="Running",
        ),
        pytest.param(
            make_pod(statuses=[running(ready=False)]),
            "Running",
            "0/1",
            id="Running-not-ready",
        ),
        pytest.param(
            make_pod(
                containers=["job", "app"],
                statuses=[terminated(0, "Completed", name="job"), running(name="app")],
                conditions={"Ready": "False"},
            ),
            "NotReady",
            "1/2",
            id="Completed-with-running-container-NotReady",
        ),
        pytest.param(
            make_pod(
                containers=["job", "app"],
                statuses=[terminated(0, "Completed", name="job"), running(name="app")],
                conditions={"Ready": "True"},
            ),
            "Running",
            "1/2",
            id="Completed-with-running-container-Running",
        ),
        pytest.param(
            make_pod(phase="Pending"),
            "Pending",
            "0/1",
            id="no-statuses-shows-phase",
        ),
        pytest.param(
            make_pod(
                sidecars=["proxy"],
                init_statuses=[running(name="proxy")],
                statuses=[running()],
                conditions={"Initialized": "True", "Ready": "True"},
            ),
            "Running",
            "2/2",
            id="sidecar-counts-in-ready",
        ),
        pytest.param(
            make_pod(
                phase="Pending",
                sidecars=["proxy"],
                init=["migrate"],
                init_statuses=[running(name="proxy"), running(name="migrate", ready=False)],
                statuses=[waiting("PodInitializing")],
            ),
            "Init:1/2",
            "1/2",
            id="started-sidecar-skipped-while-initializing",
        ),
    ],
)
def test_status_and_ready_columns_follow_kubectl_print_pod(
    pod: PodView, status: str, ready: str
) -> None:
    row = pod_row(pod, now=NOW)
    assert (row.status, row.ready) == (status, ready)


def test_restarts_show_time_since_last_termination() -> None:
    status = ContainerStatus(
        name="app",
        restart_count=3,
        state=ContainerState(waiting=ContainerStateWaiting(reason="CrashLoopBackOff")),
        last_state=ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=1, reason="Error", started_at=ago(20), finished_at=ago(12)
            )
        ),
    )
    assert pod_row(make_pod(statuses=[status]), now=NOW).restarts == "3 (12s ago)"
    assert pod_row(make_pod(statuses=[running(restarts=0)]), now=NOW).restarts == "0"


def test_restarts_after_initialization_count_sidecars_but_not_finished_init_containers() -> None:
    # printers_test.go: once initialized, only restartable init containers' restarts are kept.
    init = ContainerStatus(
        name="migrate",
        restart_count=2,
        state=ContainerState(terminated=ContainerStateTerminated(exit_code=0, reason="Completed")),
    )
    sidecar = running(name="proxy", restarts=1)
    pod = make_pod(
        init=["migrate"],
        sidecars=["proxy"],
        init_statuses=[init, sidecar],
        statuses=[running(restarts=4)],
        conditions={"Initialized": "True", "Ready": "True"},
    )
    assert pod_row(pod, now=NOW).restarts == "5"


# --- get pods table ---------------------------------------------------------------------------


def test_get_pods_table_pads_columns_like_kubectl() -> None:
    pods = [
        make_pod(name="web-node1", statuses=[running()], conditions={"Ready": "True"}),
        make_pod(
            name="batch-job-node1",
            phase="Succeeded",
            statuses=[terminated(0, "Completed")],
            created=ago(3 * 3600 + 5 * 60),
        ),
    ]
    assert get_pods_table(pods, wide=False, now=NOW) == golden(
        "NAME              READY   STATUS      RESTARTS   AGE|\n"
        "web-node1         1/1     Running     0          101s|\n"
        "batch-job-node1   0/1     Completed   0          3h5m|\n"
    )


def test_get_pods_wide_and_all_namespaces_add_columns() -> None:
    pod = make_pod(statuses=[running()], conditions={"Ready": "True"})
    assert get_pods_table([pod], wide=True, now=NOW, all_namespaces=True) == golden(
        "NAMESPACE   NAME        READY   STATUS    RESTARTS   AGE    IP         NODE    "
        "NOMINATED NODE   READINESS GATES|\n"
        "default     web-node1   1/1     Running   0          101s   10.0.0.5   node1   "
        "<none>           <none>|\n"
    )


def test_table_minimum_column_width_is_six() -> None:
    pod = make_pod(name="a", statuses=[running()], conditions={"Ready": "True"})
    assert get_pods_table([pod], wide=False, now=NOW).splitlines()[1] == (
        "a      1/1     Running   0          101s"
    )


def test_tabwriter_aligns_each_block_of_consecutive_cells_separately() -> None:
    text = "a:\t1\nlonger key:\t2\nsection\nb:\t3\n"
    assert _tabwrite(text, minwidth=0, padding=2) == (
        "a:           1\nlonger key:  2\nsection\nb:  3\n"
    )


# --- probes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            {
                "exec": {"command": ["cat", "/tmp/healthy"]},
                "initialDelaySeconds": 30,
                "timeoutSeconds": 1,
                "periodSeconds": 3,
                "successThreshold": 1,
                "failureThreshold": 3,
            },
            "exec [cat /tmp/healthy] delay=30s timeout=1s period=3s #success=1 #failure=3",
        ),
        (
            {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}},
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3",
        ),
        (
            {"httpGet": {"path": "/ready", "port": "http", "host": "::1", "scheme": "HTTPS"}},
            "http-get https://[::1]:http/ready delay=0s timeout=1s period=10s #success=1 "
            "#failure=3",
        ),
        (
            {"tcpSocket": {"port": 8081}, "periodSeconds": 5},
            "tcp-socket :8081 delay=0s timeout=1s period=5s #success=1 #failure=3",
        ),
        (
            {"grpc": {"port": 9000, "service": "health"}},
            "grpc <pod>:9000 health delay=0s timeout=1s period=10s #success=1 #failure=3",
        ),
        (
            {"grpc": {"port": 9000}},
            "grpc <pod>:9000  delay=0s timeout=1s period=10s #success=1 #failure=3",
        ),
    ],
)
def test_probe_lines_are_kubectl_describe_probe(probe: dict[str, object], expected: str) -> None:
    assert describe_probe(probe) == expected  # type: ignore[arg-type]


# --- describe pod -----------------------------------------------------------------------------


def described_pod() -> PodView:
    spec = {
        "nodeName": "node1",
        "runtimeClassName": "process",
        "restartPolicy": "Always",
        "initContainers": [
            {"name": "init-db", "image": "busybox", "command": ["sh", "-c", "true"]}
        ],
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "ports": [
                    {"containerPort": 8080, "protocol": "TCP"},
                    {"containerPort": 9090, "protocol": "TCP", "hostPort": 9090},
                ],
                "args": ["--port", "8080"],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                },
                "livenessProbe": {
                    "exec": {"command": ["cat", "/tmp/healthy"]},
                    "initialDelaySeconds": 30,
                    "timeoutSeconds": 1,
                    "periodSeconds": 3,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "startupProbe": {
                    "tcpSocket": {"port": 8081},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 30,
                },
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {
                        "name": "POD_NAME",
                        "valueFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                        },
                    },
                ],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/var/www"},
                    {"name": "cache", "mountPath": "/cache", "readOnly": True},
                ],
            },
            {
                "name": "grpc",
                "image": "agnhost",
                "livenessProbe": {
                    "grpc": {"port": 9000},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
            },
        ],
        "volumes": [
            {"name": "data", "hostPath": {"path": "/srv/www", "type": "DirectoryOrCreate"}},
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
        "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
    }
    status = PodStatus(
        phase="Running",
        host_ip="192.168.1.10",
        pod_ip="192.168.1.10",
        pod_ips=[PodIP(ip="192.168.1.10")],
        start_time=ago(101),
        qos_class="Burstable",
        conditions=[
            PodCondition(type="PodReadyToStartContainers", status="True"),
            PodCondition(type="Initialized", status="True"),
            PodCondition(type="Ready", status="False"),
            PodCondition(type="ContainersReady", status="False"),
            PodCondition(type="PodScheduled", status="True"),
        ],
        init_container_statuses=[
            ContainerStatus(
                name="init-db",
                image="busybox",
                container_id="process://111",
                ready=True,
                started=False,
                state=ContainerState(
                    terminated=ContainerStateTerminated(
                        exit_code=0, reason="Completed", started_at=ago(101), finished_at=ago(100)
                    )
                ),
            )
        ],
        container_statuses=[
            ContainerStatus(
                name="web",
                image="nginx:1.27",
                container_id="process://222",
                ready=False,
                started=True,
                restart_count=1,
                state=ContainerState(running=ContainerStateRunning(started_at=ago(35))),
                last_state=ContainerState(
                    terminated=ContainerStateTerminated(
                        exit_code=137,
                        signal=9,
                        reason="Error",
                        started_at=ago(99),
                        finished_at=ago(36),
                    )
                ),
            ),
            ContainerStatus(
                name="grpc",
                image="agnhost",
                state=ContainerState(
                    waiting=ContainerStateWaiting(reason="CrashLoopBackOff", message="back-off")
                ),
            ),
        ],
    )
    return PodView.model_validate(
        {
            "metadata": {
                "name": "web-node1",
                "namespace": "default",
                "uid": "3f1c",
                "creationTimestamp": "2025-07-03T09:58:19Z",
                "labels": {"app": "web", "tier": "frontend"},
                "annotations": {
                    "kubernetes.io/config.hash": "3f1c",
                    "kubernetes.io/config.seen": "2025-07-03T09:58:19.000000000Z",
                    "kubernetes.io/config.source": "file",
                },
            },
            "spec": spec,
            "status": status,
        }
    )


def event(reason: str, message: str, *, first: float, last: float, count: int = 1) -> Event:
    return Event(
        metadata=EventMeta(name=f"web-node1.{reason}"),
        involved_object=ObjectReference(
            name="web-node1", uid="3f1c", field_path="spec.containers{web}"
        ),
        reason=reason,
        message=message,
        type="Warning" if reason == "Unhealthy" else "Normal",
        count=count,
        first_timestamp=ago(first),
        last_timestamp=ago(last),
    )


DESCRIBE_GOLDEN = golden(
    """\
Name:                web-node1|
Namespace:           default|
Runtime Class Name:  process|
Node:                node1/192.168.1.10|
Start Time:          Thu, 03 Jul 2025 09:58:19 +0000|
Labels:              app=web|
                     tier=frontend|
Annotations:         kubernetes.io/config.hash: 3f1c|
                     kubernetes.io/config.seen: 2025-07-03T09:58:19.000000000Z|
                     kubernetes.io/config.source: file|
Status:              Running|
IP:                  192.168.1.10|
IPs:|
  IP:  192.168.1.10|
Init Containers:|
  init-db:|
    Container ID:  process://111|
    Image:         busybox|
    Image ID:      |
    Port:          <none>|
    Host Port:     <none>|
    Command:|
      sh|
      -c|
      true|
    State:          Terminated|
      Reason:       Completed|
      Exit Code:    0|
      Started:      Thu, 03 Jul 2025 09:58:19 +0000|
      Finished:     Thu, 03 Jul 2025 09:58:20 +0000|
    Ready:          True|
    Restart Count:  0|
    Environment:    <none>|
    Mounts:         <none>|
Containers:|
  web:|
    Container ID:  process://222|
    Image:         nginx:1.27|
    Image ID:      |
    Ports:         8080/TCP, 9090/TCP|
    Host Ports:    0/TCP, 9090/TCP|
    Args:|
      --port|
      8080|
    State:          Running|
      Started:      Thu, 03 Jul 2025 09:59:25 +0000|
    Last State:     Terminated|
      Reason:       Error|
      Exit Code:    137|
      Signal:       9|
      Started:      Thu, 03 Jul 2025 09:58:21 +0000|
      Finished:     Thu, 03 Jul 2025 09:59:24 +0000|
    Ready:          False|
    Restart Count:  1|
    Limits:|
      cpu:     500m|
      memory:  128Mi|
    Requests:|
      cpu:      250m|
      memory:   64Mi|
    Liveness:   exec [cat /tmp/healthy] delay=30s timeout=1s period=3s #success=1 #failure=3|
    Readiness:  http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3|
    Startup:    tcp-socket :8081 delay=0s timeout=1s period=10s #success=1 #failure=30|
    Environment:|
      MODE:      prod|
      POD_NAME:  web-node1 (v1:metadata.name)|
    Mounts:|
      /cache from cache (ro)|
      /var/www from data (rw)|
  grpc:|
    Container ID:   |
    Image:          agnhost|
    Image ID:       |
    Port:           <none>|
    Host Port:      <none>|
    State:          Waiting|
      Reason:       CrashLoopBackOff|
    Ready:          False|
    Restart Count:  0|
    Liveness:       grpc <pod>:9000  delay=0s timeout=1s period=10s #success=1 #failure=3|
    Environment:    <none>|
    Mounts:         <none>|
Conditions:|
  Type                        Status|
  PodReadyToStartContainers   True |
  Initialized                 True |
  Ready                       False |
  ContainersReady             False |
  PodScheduled                True |
Volumes:|
  data:|
    Type:          HostPath (bare host directory volume)|
    Path:          /srv/www|
    HostPathType:  DirectoryOrCreate|
  cache:|
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)|
    Medium:      Memory|
    SizeLimit:   64Mi|
QoS Class:       Burstable|
Node-Selectors:  <none>|
Tolerations:     :NoExecute op=Exists|
Events:|
  Type     Reason     Age                 From     Message|
  ----     ------     ----                ----     -------|
  Normal   Killing    65s                 kubelet  spec.containers{web}: Container web failed liveness probe, will be restarted|
  Normal   Started    35s (x2 over 101s)  kubelet  spec.containers{web}: Started container web|
  Warning  Unhealthy  2s (x5 over 71s)    kubelet  spec.containers{web}: Liveness probe failed: cat: /tmp/healthy: No such file or directory|
"""  # noqa: E501
)


def test_describe_pod_matches_kubectl_layout() -> None:
    events = [
        event(
            "Unhealthy",
            "Liveness probe failed: cat: /tmp/healthy: No such file or directory",
            first=71,
            last=2,
            count=5,
        ),
        event(
            "Killing", "Container web failed liveness probe, will be restarted", first=65, last=65
        ),
        event("Started", "Started container web", first=101, last=35, count=2),
    ]
    text = describe_pod(described_pod(), events, now=NOW, tz=UTC)
    assert text == DESCRIBE_GOLDEN


def test_describe_without_events_says_none_aligned_with_the_block_above() -> None:
    text = describe_pod(described_pod(), [], now=NOW, tz=UTC)
    assert text.endswith(
        "QoS Class:       Burstable\n"
        "Node-Selectors:  <none>\n"
        "Tolerations:     :NoExecute op=Exists\n"
        "Events:          <none>\n"
    )


def test_describe_minimal_pod_prints_none_placeholders() -> None:
    pod = PodView.model_validate(
        {
            "metadata": {"name": "bare-node1", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Pending"},
        }
    )
    assert describe_pod(pod, [], now=NOW, tz=UTC) == golden(
        """\
Name:         bare-node1|
Namespace:    default|
Node:         <none>|
Labels:       <none>|
Annotations:  <none>|
Status:       Pending|
IP:           |
IPs:          <none>|
Containers:|
  app:|
    Image:        busybox|
    Port:         <none>|
    Host Port:    <none>|
    Environment:  <none>|
    Mounts:       <none>|
Volumes:          <none>|
QoS Class:        BestEffort|
Node-Selectors:   <none>|
Tolerations:      <none>|
Events:           <none>|
"""
    )


def test_json_output_sorts_keys_and_escapes_like_go() -> None:
    assert to_json({"b": "<none>", "a": 1}) == '{\n    "a": 1,\n    "b": "\\u003cnone\\u003e"\n}\n'
