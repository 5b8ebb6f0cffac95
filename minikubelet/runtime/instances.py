"""What the process runtime keeps on disk about each container instance, for the next daemon.

Two files per instance, in ``<pod dir>/containers/``:

- ``<container>-<n>.json``, the *record*, written by the daemon: who the instance is (pod UID,
  container name, restart count, container ID), how to find and recognise its leading process
  (pid, start time in clock ticks, boot id, cgroup), what exec needs to join it (namespace, env,
  working directory, user), its pod's grace period, and, once the daemon has seen it end, its
  exit. It is written before the process is started (pid null; in place: a record cut short
  there is ignored, and then nothing was started), again as soon as the pid is known, and once
  more with the exit, those two atomically (temp file and rename), so that a reader finds the
  old or the new record, never half of one.
- ``<container>-<n>.exit``, written by the instance's exit recorder (a ``sh`` that is the
  container's parent, see ``mounts``) when the command ends: its exit status, as a shell
  reports it (128+N for signal N). The recorder opens it at start and writes it with one
  ``write``; its mtime is the finish time. Empty: the command has not ended, or the recorder
  was killed with it (SIGKILL of the whole container, an OOM kill).

Records are kept for the current and the previous instance of each container (as their logs
are), and go with the pod's directory. A record that cannot be read is reported and ignored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minikubelet.runtime import procs
from minikubelet.runtime.base import UNKNOWN_EXIT_CODE, UNKNOWN_MESSAGE, ContainerExit, ExitReason

log = logging.getLogger(__name__)

_RECORD = re.compile(r"^(?P<name>.+)-(?P<n>\d+)\.(?P<ext>json|exit)$")


def record_path(containers_dir: Path, name: str, restart_count: int) -> Path:
    return containers_dir / f"{name}-{restart_count}.json"


def exit_path(containers_dir: Path, name: str, restart_count: int) -> Path:
    return containers_dir / f"{name}-{restart_count}.exit"


@dataclass(slots=True)
class InstanceRecord:
    container_id: str  # process://<uid>-<name>-<n>
    pod_uid: str
    pod_name: str
    namespace: str
    container: str  # the container's name in the spec
    restart_count: int  # n: the instance's index, names its log and record
    started_at: datetime  # when it was started (UTC)
    boot_id: str  # the boot it was started in: pids mean nothing in another one
    grace_seconds: float  # the pod's terminationGracePeriodSeconds, to stop it without a spec
    isolated: bool  # runs in a private mount namespace (exec joins it with nsenter)
    workdir: str  # as the container sees it
    env: dict[str, str] = field(default_factory=dict)  # its environment, for exec
    setpriv: list[str] = field(default_factory=list)  # the setpriv prefix, for exec
    cgroup: str | None = None  # its container cgroup directory, if any
    pid: int | None = None  # the leader's pid (pgid and sid too); None: not started yet
    start_ticks: int | None = None  # the leader's start time, clock ticks after boot
    exit: ContainerExit | None = None  # once the daemon has seen it end

    def to_json(self) -> dict[str, Any]:
        return {
            "containerID": self.container_id,
            "podUID": self.pod_uid,
            "podName": self.pod_name,
            "namespace": self.namespace,
            "container": self.container,
            "restartCount": self.restart_count,
            "startedAt": self.started_at.isoformat(),
            "bootID": self.boot_id,
            "gracePeriodSeconds": self.grace_seconds,
            "mountNamespace": self.isolated,
            "workingDir": self.workdir,
            "env": self.env,
            "setpriv": self.setpriv,
            "cgroup": self.cgroup,
            "pid": self.pid,
            "pgid": self.pid,
            "procStartTicks": self.start_ticks,
            "exit": _exit_to_json(self.exit),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        started_at = _time(data["startedAt"])
        return cls(
            container_id=str(data["containerID"]),
            pod_uid=str(data["podUID"]),
            pod_name=str(data["podName"]),
            namespace=str(data["namespace"]),
            container=str(data["container"]),
            restart_count=int(data["restartCount"]),
            started_at=started_at,
            boot_id=str(data.get("bootID") or ""),
            grace_seconds=float(data.get("gracePeriodSeconds", 30)),
            isolated=bool(data.get("mountNamespace")),
            workdir=str(data.get("workingDir") or "/"),
            env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
            setpriv=[str(a) for a in data.get("setpriv") or []],
            cgroup=str(data["cgroup"]) if data.get("cgroup") else None,
            pid=int(data["pid"]) if data.get("pid") is not None else None,
            start_ticks=(
                int(data["procStartTicks"]) if data.get("procStartTicks") is not None else None
            ),
            exit=_exit_from_json(data.get("exit"), started_at),
        )


def _time(value: object) -> datetime:
    stamp = datetime.fromisoformat(str(value))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _exit_to_json(exit: ContainerExit | None) -> dict[str, Any] | None:
    if exit is None:
        return None
    return {
        "exitCode": exit.exit_code,
        "signal": exit.signal,
        "reason": exit.reason.value,
        "message": exit.message,
        "startedAt": exit.started_at.isoformat(),
        "finishedAt": exit.finished_at.isoformat(),
    }


def _exit_from_json(data: object, started_at: datetime) -> ContainerExit | None:
    if not isinstance(data, dict):
        return None
    reason = next((r for r in ExitReason if r.value == data.get("reason")), ExitReason.ERROR)
    return ContainerExit(
        exit_code=int(data["exitCode"]),
        signal=int(data["signal"]) if data.get("signal") is not None else None,
        reason=reason,
        message=str(data["message"]) if data.get("message") is not None else None,
        started_at=_time(data["startedAt"]) if data.get("startedAt") else started_at,
        finished_at=_time(data["finishedAt"]),
    )


def write_record(path: Path, record: InstanceRecord, *, atomic: bool = True) -> None:
    """Atomically (temp file, rename): a later reader finds the old or the new record.
    ``atomic=False`` writes in place, for the first record of an instance: cut short, it is
    unreadable and ignored, which is right for an instance whose process was never started."""
    data = json.dumps(record.to_json(), indent=2) + "\n"
    if not atomic:
        path.write_text(data)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


def read_record(path: Path) -> InstanceRecord | None:
    try:
        return InstanceRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable instance record %s: %s", path, exc)
        return None


def read_exit_file(path: Path) -> tuple[int, datetime] | None:
    """(exit status, finish time) as the exit recorder wrote them; None if it did not."""
    try:
        with open(path, "rb") as f:
            data = f.read(32)
            mtime = os.fstat(f.fileno()).st_mtime
    except OSError:
        return None
    if not data.endswith(b"\n") or not data.strip().isdigit():
        return None  # not written (or cut short): nothing known
    return int(data), datetime.fromtimestamp(mtime, UTC)


def exit_of_status(
    code: int, *, started_at: datetime, finished_at: datetime, oom_killed: bool = False
) -> ContainerExit:
    """A shell's exit status (128+N for signal N) as a ContainerExit. A shell cannot tell
    ``exit 137`` from SIGKILL: a status of 129-192 is reported as that signal."""
    signal = code - 128 if 128 < code <= 128 + 64 else None
    if oom_killed:
        reason = ExitReason.OOM_KILLED
    elif code == 0:
        reason = ExitReason.COMPLETED
    else:
        reason = ExitReason.ERROR
    return ContainerExit(
        exit_code=code,
        signal=signal,
        reason=reason,
        message=None,
        started_at=started_at,
        finished_at=finished_at,
    )


def list_records(containers_dir: Path) -> list[Path]:
    """The records of one pod, by container and then by instance."""
    try:
        names = os.listdir(containers_dir)
    except FileNotFoundError:
        return []
    found: list[tuple[str, int, Path]] = []
    for name in names:
        match = _RECORD.match(name)
        if match and match.group("ext") == "json":
            found.append((match.group("name"), int(match.group("n")), containers_dir / name))
    return [path for _, _, path in sorted(found)]


def prune(containers_dir: Path, name: str, restart_count: int) -> None:
    """Keep the records (and exit files) of instance ``restart_count`` and the one before."""
    with contextlib.suppress(FileNotFoundError), os.scandir(containers_dir) as entries:
        for entry in entries:
            match = _RECORD.match(entry.name)
            if match and match.group("name") == name and int(match.group("n")) < restart_count - 1:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def unknown_exit(started_at: datetime, finished_at: datetime) -> ContainerExit:
    """Gone without a trace: kubelet's ContainerStatusUnknown (the finish time is when we
    found out)."""
    return ContainerExit(
        exit_code=UNKNOWN_EXIT_CODE,
        signal=None,
        reason=ExitReason.UNKNOWN,
        message=UNKNOWN_MESSAGE,
        started_at=started_at,
        finished_at=finished_at,
    )


def start_error(started_at: datetime, message: str) -> ContainerExit:
    return ContainerExit(
        exit_code=128,
        signal=None,
        reason=ExitReason.START_ERROR,
        message=message,
        started_at=started_at,
        finished_at=datetime.now(UTC),
    )


def read_all(pods_dir: Path) -> dict[str, list[tuple[Path, InstanceRecord]]]:
    """Every pod's instance records, by pod UID (blocking)."""
    found: dict[str, list[tuple[Path, InstanceRecord]]] = {}
    try:
        uids = sorted(os.listdir(pods_dir))
    except FileNotFoundError:
        return found
    for uid in uids:
        for path in list_records(pods_dir / uid / "containers"):
            record = read_record(path)
            if record is not None and record.pod_uid == uid:
                found.setdefault(uid, []).append((path, record))
    return found


def find_unrecorded(exit_file: Path) -> int | None:
    """The leader of an instance whose pid was never recorded (the daemon died right after
    spawning it): the recorder whose arguments name this instance's exit file."""
    needle = os.fsencode(str(exit_file)) + b"\0"
    for stat in procs.scan():
        try:
            with open(f"/proc/{stat.pid}/cmdline", "rb") as f:
                if needle in f.read():
                    return stat.pid if stat.pid == stat.sid else None
        except OSError:
            continue
    return None
