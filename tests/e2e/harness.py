"""End-to-end harness: the real daemon as a subprocess, observed only through its API and CLI.

A ``Daemon`` owns one working directory (manifests, state dir, config file, log file), starts
``python -m minikubelet run`` on a free port, waits for ``/healthz``, and on exit stops it the way
systemd would (SIGTERM, a grace period, SIGKILL) and then proves that nothing it started is still
running. Tests talk to it the way a user does: ``write_manifest``, then the HTTP API (``pods``,
``events``, ``logs``) or the CLI (``cli("get", "pods")``).

Why the leftover check looks in three places: containers run in their own session (DESIGN.md,
restart recovery), so once the daemon has exited they are no longer its children, nor ours. The
harness therefore (1) records the daemon's descendants every ``TRACK_INTERVAL`` seconds while it
runs, (2) looks for processes in the daemon's session, and (3) looks for processes whose command
line, working directory or environment mention the daemon's working directory (emptyDir volumes,
logs and state live there). Anything found is killed, and the stop fails naming it.

Pure stdlib HTTP (urllib) on purpose: the harness must not share a client library's bugs with the
daemon under test. Like any client, the harness authenticates: every request carries the token
the daemon wrote to ``state/token``, over TLS verified against the daemon's own CA
(``state/pki/ca.crt``), unless the config turns TLS off (``api: {tls: false}``). CLI runs get
``MINIKUBELET_STATE_DIR`` so that the CLI finds the token and CA where a root user's would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import psutil
import yaml

T = TypeVar("T")

NODE_NAME = "testnode"
STARTUP_TIMEOUT = 20.0  # seconds until /healthz must answer "ok"
STOP_TIMEOUT = 40.0  # seconds between SIGTERM and SIGKILL
LEFTOVER_GRACE = 2.0  # seconds for processes the daemon just killed to leave the process table
TRACK_INTERVAL = 0.2  # seconds between snapshots of the daemon's process tree
HTTP_TIMEOUT = 10.0

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "manifests"  # the README's example pods

# Settings that make e2e tests fast; tests add or override keys through ``config=``.
FAST_CONFIG: dict[str, Any] = {
    "fileCheckFrequency": "1s",
    "crashLoopBackOff": {"initialDelay": "1s", "maxContainerRestartPeriod": "4s"},
    "statusFlushInterval": "100ms",
}

ProcKey = tuple[int, float]  # (pid, create_time): a pid alone may be reused


class HarnessError(AssertionError):
    """The daemon misbehaved in a way the harness saw: it did not start, stop, or clean up."""


class DaemonExited(HarnessError):
    """The daemon is gone while a test still talks to it; waiting any longer is pointless."""


class WaitTimeout(AssertionError):
    """``wait_for`` gave up; the message holds the last observed state."""


# --- small helpers, usable without a daemon ---------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so a watcher sees either the old file or the whole new one.

    The temporary file is a dotfile in the same directory (kubelet's file source, and ours,
    ignore names starting with "."), then ``os.replace`` renames it over ``path``.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    describe: str | Callable[[], str] | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    An exception from ``predicate`` (an ``assert``, a pod not there yet, a refused connection)
    counts as "not yet", except ``DaemonExited``, which is raised at once. On timeout, raises
    ``WaitTimeout`` with the last value or exception and ``describe`` (a string, or a callable
    evaluated then, e.g. a dump of the pods).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
        except DaemonExited:
            raise
        except Exception as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response's socket
            last, last_exc = None, exc
        else:
            if value:
                return value
            last, last_exc = value, None
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    what = getattr(predicate, "__name__", repr(predicate))
    observed = f"{type(last_exc).__name__}: {last_exc}" if last_exc else repr(last)
    message = f"timed out after {timeout:g}s waiting for {what}; last observed: {observed}"
    if describe is not None:
        try:
            extra = describe() if callable(describe) else describe
        except Exception as exc:
            extra = f"(describe failed: {exc!r})"
        message += f"\n{extra}"
    raise WaitTimeout(message) from last_exc


def manifest_filename(name: str) -> str:
    """``web`` -> ``web.yaml``; names that already end in .yaml/.yml/.json are kept."""
    return name if name.endswith((".yaml", ".yml", ".json")) else f"{name}.yaml"


def summarize_pods(pods: Sequence[Mapping[str, Any]]) -> str:
    """One line per pod and container: phase, state, reason, restarts, readiness."""
    if not pods:
        return "pods: (none)"
    lines = ["pods:"]
    for pod in pods:
        status = pod.get("status", {})
        lines.append(f"  {pod.get('metadata', {}).get('name')}: phase={status.get('phase')}")
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or []:
                state = cs.get("state") or {}
                kind = next(iter(state), "?")
                detail = state.get(kind) or {}
                reason = detail.get("reason", "")
                code = detail.get("exitCode")
                lines.append(
                    f"    {'init ' if key.startswith('init') else ''}{cs.get('name')}: {kind}"
                    f"{'/' + reason if reason else ''}"
                    f"{f' exit={code}' if code is not None else ''}"
                    f" restarts={cs.get('restartCount')} ready={cs.get('ready')}"
                )
    return "\n".join(lines)


# --- the daemon -------------------------------------------------------------------------------


class _TreeTracker(threading.Thread):
    """Remembers every descendant of ``pid`` seen while it runs (they may leave the tree later)."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"harness-tracker-{pid}", daemon=True)
        self.pid = pid
        self.seen: dict[ProcKey, str] = {}  # (pid, create_time) -> command line when first seen
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def snapshot(self) -> None:
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                key = (child.pid, child.create_time())
                if key not in self.seen:
                    cmd = " ".join(child.cmdline()) or child.name()
                    with self._lock:
                        self.seen[key] = cmd
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self._stop_event.wait(TRACK_INTERVAL):
            self.snapshot()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def keys(self) -> dict[ProcKey, str]:
        with self._lock:
            return dict(self.seen)


class Daemon:
    """One ``minikubelet run`` subprocess and its working directory.

    Layout under ``workdir``: ``manifests/``, ``state/``, ``config.yaml`` (when ``config`` is
    given), ``daemon.log`` (stdout and stderr of every start, appended).

    Use as a context manager (``with Daemon(tmp_path) as d:``) or through the
    ``minikubelet_daemon`` / ``daemon_factory`` fixtures in tests/e2e/conftest.py.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        node_name: str = NODE_NAME,
        config: Mapping[str, Any] | None = None,
        runtime: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        tls: bool | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.node_name = node_name
        self.manifests_dir = self.workdir / "manifests"
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "daemon.log"
        self.config_path: Path | None = self.workdir / "config.yaml" if config is not None else None
        self.config = dict(config) if config is not None else None
        self.runtime = runtime
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        # The program before "run": the real package by default; tests of the harness itself
        # substitute a fake server that takes the same arguments.
        self.command = list(command or [sys.executable, "-m", "minikubelet"])
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout

        api = (self.config or {}).get("api") or {}
        # The daemon serves https unless its config says api.tls: false.
        self.tls = tls if tls is not None else api.get("tls") is not False
        self.listen_host = listen_host  # what --listen binds; the harness talks to 127.0.0.1
        self.port: int | None = None
        self._ssl: ssl.SSLContext | None = None  # trusts the daemon's CA, once it exists
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.starts = 0
        self._tracker: _TreeTracker | None = None
        self._tracked: dict[ProcKey, str] = {}  # descendants of every run so far
        self._sessions: set[int] = set()  # session ids of every run so far
        self._stopped = False  # stop() has run since the last start()
        self._exit_expected = False  # the test killed the daemon itself (kill())

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manifests_dir.mkdir(exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        if self.config_path is not None:
            self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise HarnessError("the daemon has not been started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def token_path(self) -> Path:
        return self.state_dir / "token"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    def token(self) -> str | None:
        """The daemon's API token (None before its first start)."""
        try:
            return self.token_path.read_text().strip()
        except FileNotFoundError:
            return None

    def _context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        if self._ssl is None and self.ca_path.exists():
            self._ssl = ssl.create_default_context(cafile=str(self.ca_path))
        return self._ssl

    def open(
        self,
        path: str,
        *,
        timeout: float = HTTP_TIMEOUT,
        token: str | bool | None = True,
        method: str = "GET",
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """``urlopen`` of ``path`` with the daemon's token (``token=``: another one, or None
        for none) over TLS trusting the daemon's CA; raises like urlopen."""
        sent = dict(headers or {})
        bearer = self.token() if token is True else token
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.url + path, data=data, headers=sent, method=method)
        return urllib.request.urlopen(request, timeout=timeout, context=self._context())

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def argv(self) -> list[str]:
        args = [
            *self.command,
            "run",
            "--manifests",
            str(self.manifests_dir),
            "--state-dir",
            str(self.state_dir),
            "--node-name",
            self.node_name,
            "--listen",
            f"{self.listen_host}:{self.port}",
        ]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        if self.runtime is not None:
            args += ["--runtime", self.runtime]
        return args + self.extra_args

    def start(self) -> Daemon:
        """Start the daemon and wait until ``/healthz`` says ``ok``; retries a lost port race."""
        if self.running:
            raise HarnessError("the daemon is already running")
        for attempt in range(3):
            # A restart keeps the port: clients (and tests) hold the URL.
            if self.port is None or attempt > 0:
                self.port = free_port()
            if self._start_once():
                return self
            if not self._lost_port_race():
                break
        # Clean up here, so that the fixture's teardown does not report the same failure again.
        self._stopped = True
        leftovers = self.sweep_leftovers()
        message = (
            f"daemon did not become healthy within {self.startup_timeout:g}s"
            f" (exit code {self.returncode})"
        )
        if leftovers:
            message += "\nprocesses left behind (now killed):\n" + "\n".join(
                f"  {line}" for line in leftovers
            )
        raise HarnessError(f"{message}\n{self.log_tail()}")

    def _start_once(self) -> bool:
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        for name in ("MINIKUBELET_SERVER", "MINIKUBELET_TOKEN", "MINIKUBELET_STATE_DIR"):
            env.pop(name, None)
        argv = self.argv()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== harness: start #{self.starts}: {' '.join(argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,  # a session of its own: found again at stop
            )
        self.returncode = None
        self._stopped = False
        self._exit_expected = False
        self._sessions.add(self.process.pid)
        self._tracker = _TreeTracker(self.process.pid)
        self._tracker.start()

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reap()
                return False
            try:
                status, body = self.request("/healthz", timeout=1.0)
                if status == 200 and body.strip() == "ok":
                    return True
            except (OSError, HarnessError):
                pass
            time.sleep(0.1)
        self._terminate(timeout=self.stop_timeout)
        return False

    def _lost_port_race(self) -> bool:
        tail = self.log_tail(20).lower()
        return "address already in use" in tail or "errno 98" in tail

    def stop(
        self,
        *,
        check: bool = True,
        sig: int = signal.SIGTERM,
        ok_exit_codes: Sequence[int] = (0,),
    ) -> int | None:
        """Stop as systemd would: ``sig``, up to ``stop_timeout`` s, then SIGKILL.

        With ``check``, raise HarnessError (after cleaning up) when the daemon had exited by
        itself before this call, needed SIGKILL, exited with a code not in ``ok_exit_codes``, or
        left any process running (those are killed). Returns the daemon's exit code. Calling it
        again is a no-op, so a test may stop the daemon itself (``check=False`` when it expects
        a crash) and the fixture's teardown will not complain again.
        """
        if self.process is None or self._stopped:
            return self.returncode
        problems = []
        if self.process.poll() is None:
            if self._terminate(timeout=self.stop_timeout, sig=sig):
                problems.append(
                    f"daemon ignored {signal.Signals(sig).name} for {self.stop_timeout:g}s;"
                    " it was killed with SIGKILL"
                )
            elif self.returncode not in ok_exit_codes:
                problems.append(
                    f"daemon exited with code {self.returncode} after {signal.Signals(sig).name}"
                    f" (expected {' or '.join(map(str, ok_exit_codes))})"
                )
        else:
            self._reap()
            if not self._exit_expected:
                problems.append(f"daemon had exited by itself (code {self.returncode})")
        self._stopped = True
        leftovers = self.sweep_leftovers()
        if leftovers:
            listing = "\n".join(f"  {line}" for line in leftovers)
            problems.append(
                f"processes left running after the daemon exited (now killed):\n{listing}"
            )
        if check and problems:
            raise HarnessError("\n".join(problems) + f"\n{self.log_tail()}")
        return self.returncode

    def kill(self) -> int | None:
        """SIGKILL the daemon alone, as a crash would; its containers are left alone.

        For restart-recovery tests: ``kill()``, then ``start()`` again on the same directories.
        Whatever is still running at the end is found by the final ``stop``.
        """
        if self.process is None or self.process.poll() is not None:
            return self.returncode
        self._exit_expected = True
        self.process.kill()
        self.process.wait()
        self._reap()
        return self.returncode

    def restart(self, *, sig: int | None = signal.SIGTERM) -> Daemon:
        """Stop (``sig``; None means SIGKILL like a crash) without the leftover check, start."""
        if sig is None:
            self.kill()
        elif self.process is not None and self.process.poll() is None:
            self._terminate(timeout=self.stop_timeout, sig=sig)
        return self.start()

    def _terminate(self, *, timeout: float, sig: int = signal.SIGTERM) -> bool:
        """Signal, wait, SIGKILL. True when SIGKILL was needed."""
        assert self.process is not None
        killed = False
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reap()
        return killed

    def _reap(self) -> None:
        assert self.process is not None
        self.returncode = self.process.wait()
        if self._tracker is not None:
            self._tracker.snapshot()
            self._tracker.stop()
            self._tracked.update(self._tracker.keys())
            self._tracker = None

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes started by this daemon (any run) that are still alive, zombies excluded."""
        if self._tracker is not None:
            self._tracker.snapshot()
            tracked = {**self._tracked, **self._tracker.keys()}
        else:
            tracked = dict(self._tracked)
        exclude = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        if self.process is not None and self.process.poll() is None:
            exclude.add(self.process.pid)
        tag = str(self.workdir)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid", "create_time", "cmdline", "cwd", "status"]):
            try:
                info = proc.info
                pid = info["pid"]
                if pid in exclude or info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                if (pid, info["create_time"]) in tracked:
                    found[pid] = proc
                    continue
                if self.running and self._is_descendant_of_daemon(proc):
                    continue  # still the daemon's: it may stop them itself
                if os.getsid(pid) in self._sessions:
                    found[pid] = proc
                    continue
                text = " ".join(info["cmdline"] or []) + " " + (info["cwd"] or "")
                if tag in text or self._environ_mentions(proc, tag):
                    found[pid] = proc
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        if self.running:
            found = {pid: p for pid, p in found.items() if not self._is_descendant_of_daemon(p)}
        return list(found.values())

    def _is_descendant_of_daemon(self, proc: psutil.Process) -> bool:
        assert self.process is not None
        try:
            return any(parent.pid == self.process.pid for parent in proc.parents())
        except psutil.Error:
            return False

    @staticmethod
    def _environ_mentions(proc: psutil.Process, tag: str) -> bool:
        try:
            return any(tag in value for value in proc.environ().values())
        except psutil.Error:
            return False

    def sweep_leftovers(self, *, grace: float = LEFTOVER_GRACE) -> list[str]:
        """Kill whatever ``leftover_processes`` still finds after ``grace`` s; describe it."""
        deadline = time.monotonic() + grace
        left = self.leftover_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.leftover_processes()
        described = []
        for proc in left:
            try:
                described.append(f"pid {proc.pid}: {' '.join(proc.cmdline()) or proc.name()}")
            except psutil.Error:
                described.append(f"pid {proc.pid}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=5)
        return described

    def close(self) -> None:
        """Stop with every check (the fixture's teardown)."""
        self.stop(check=True)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop(check=True)
            return
        # The test already failed: clean up, and report problems without hiding its error.
        try:
            self.stop(check=True)
        except HarnessError as stop_error:
            print(f"harness: while stopping after a failure: {stop_error}", file=sys.stderr)

    # -- log --------------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- {self.log_path} (last {len(text)} lines) ---\n" + "\n".join(text)

    # -- HTTP API -------------------------------------------------------------------------------

    def request(
        self,
        path: str,
        *,
        timeout: float = HTTP_TIMEOUT,
        token: str | bool | None = True,
        method: str = "GET",
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """GET (or ``method``) ``path``; (status, body) for any HTTP status. A dead daemon
        raises HarnessError. ``token``: as in ``open``."""
        try:
            with self.open(
                path, timeout=timeout, token=token, method=method, data=data, headers=headers
            ) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            if self.process is not None and self.process.poll() is not None:
                self._reap()
                raise DaemonExited(
                    f"GET {path}: the daemon has exited (code {self.returncode})\n{self.log_tail()}"
                ) from exc
            raise

    def get(self, path: str, *, timeout: float = HTTP_TIMEOUT) -> str:
        """GET ``path``, which must answer 200."""
        status, body = self.request(path, timeout=timeout)
        if status != 200:
            raise HarnessError(f"GET {path}: HTTP {status}: {body[:2000]}")
        return body

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def full_name(self, name: str) -> str:
        """A static pod's name: ``<metadata.name>-<node name>``."""
        return f"{name}-{self.node_name}"

    def pods(self) -> list[dict[str, Any]]:
        """``GET /pods`` items (v1 Pod objects)."""
        items: list[dict[str, Any]] = self.get_json("/pods").get("items") or []
        return items

    def pod_or_none(self, name: str) -> dict[str, Any] | None:
        """The pod of the manifest whose metadata.name is ``name``, or None."""
        full = self.full_name(name)
        for pod in self.pods():
            if pod.get("metadata", {}).get("name") == full:
                return pod
        return None

    def pod(self, name: str) -> dict[str, Any]:
        """The pod of the manifest whose metadata.name is ``name`` (KeyError if absent)."""
        pods = self.pods()
        full = self.full_name(name)
        for pod in pods:
            if pod.get("metadata", {}).get("name") == full:
                return pod
        names = [p.get("metadata", {}).get("name") for p in pods]
        raise KeyError(f"no pod {full!r}; pods: {names}")

    def container_status(self, name: str, container: str) -> dict[str, Any]:
        """The (init)ContainerStatus of ``container`` in pod ``name`` (KeyError if absent)."""
        status = self.pod(name).get("status", {})
        for key in ("containerStatuses", "initContainerStatuses"):
            for cs in status.get(key) or []:
                if cs.get("name") == container:
                    found: dict[str, Any] = cs
                    return found
        raise KeyError(f"pod {self.full_name(name)!r} has no status for container {container!r}")

    def events(self, pod: str | None = None) -> list[dict[str, Any]]:
        """``GET /events`` items, only those about pod ``pod`` (metadata.name) when given."""
        items: list[dict[str, Any]] = self.get_json("/events").get("items") or []
        if pod is None:
            return items
        full = self.full_name(pod)
        return [e for e in items if e.get("involvedObject", {}).get("name") == full]

    def event_reasons(self, pod: str | None = None) -> list[str]:
        return [str(e.get("reason")) for e in self.events(pod)]

    def logs_path(
        self,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        follow: bool = False,
        namespace: str = "default",
    ) -> str:
        query: dict[str, str] = {}
        if previous:
            query["previous"] = "true"
        if tail_lines is not None:
            query["tailLines"] = str(tail_lines)
        if follow:
            query["follow"] = "true"
        path = "/containerLogs/{}/{}/{}".format(
            *(
                urllib.parse.quote(part, safe="")
                for part in (namespace, self.full_name(pod), container)
            )
        )
        return path + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def logs(
        self,
        pod: str,
        container: str,
        previous: bool = False,
        *,
        tail_lines: int | None = None,
        namespace: str = "default",
    ) -> str:
        """The container's log, as ``minikubelet logs`` (and kubelet's API) return it."""
        return self.get(
            self.logs_path(
                pod, container, previous=previous, tail_lines=tail_lines, namespace=namespace
            )
        )

    @contextlib.contextmanager
    def follow_logs(
        self, pod: str, container: str, *, timeout: float = HTTP_TIMEOUT, namespace: str = "default"
    ) -> Iterator[Iterator[str]]:
        """``with d.follow_logs("web", "app") as lines: next(lines)`` (``follow=true``)."""
        path = self.logs_path(pod, container, follow=True, namespace=namespace)
        with self.open(path, timeout=timeout) as response:
            yield (line.decode("utf-8", errors="replace") for line in response)

    # -- waiting ----------------------------------------------------------------------------------

    def describe_state(self) -> str:
        """Pods and recent log lines: what a failing wait prints."""
        try:
            pods = summarize_pods(self.pods())
        except Exception as exc:
            pods = f"pods: unavailable ({exc!r})"
        return f"{pods}\n{self.log_tail(40)}"

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 30.0,
        interval: float = 0.1,
        describe: str | Callable[[], str] | None = None,
    ) -> T:
        """``wait_for`` that also prints the pods and the daemon's log when it gives up."""

        def everything() -> str:
            extra = describe() if callable(describe) else describe
            return "\n".join(part for part in (extra, self.describe_state()) if part)

        return wait_for(predicate, timeout=timeout, interval=interval, describe=everything)

    def wait_for_pod(
        self,
        name: str,
        condition: Callable[[dict[str, Any]], object],
        timeout: float = 30.0,
        describe: str | None = None,
    ) -> dict[str, Any]:
        """Wait until pod ``name`` exists and ``condition(pod)`` is truthy; return the pod."""

        def pod_matches() -> dict[str, Any] | None:
            pod = self.pod(name)
            return pod if condition(pod) else None

        pod_matches.__name__ = describe or f"pod {self.full_name(name)} to match the condition"
        return self.wait_for(pod_matches, timeout=timeout)

    def wait_for_phase(self, name: str, phase: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for_pod(
            name,
            lambda pod: pod.get("status", {}).get("phase") == phase,
            timeout=timeout,
            describe=f"pod {self.full_name(name)} to be {phase}",
        )

    def wait_for_gone(self, name: str, timeout: float = 30.0) -> None:
        def pod_gone() -> bool:
            return self.pod_or_none(name) is None

        pod_gone.__name__ = f"pod {self.full_name(name)} to disappear"
        self.wait_for(pod_gone, timeout=timeout)

    # -- CLI and manifests ----------------------------------------------------------------------

    def cli(
        self,
        *args: str,
        check: bool = False,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m minikubelet --server URL ARGS...`` and capture its output.

        ``check=True`` raises HarnessError (with stdout and stderr) on a non-zero exit.
        """
        argv = [*self.command, "--server", self.url, *args]
        result = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env={
                **os.environ,
                "MINIKUBELET_SERVER": self.url,
                "MINIKUBELET_STATE_DIR": str(self.state_dir),
                **(env or {}),
            },
            check=False,
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"{' '.join(args)}: exit {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def manifest_path(self, name: str) -> Path:
        return self.manifests_dir / manifest_filename(name)

    def write_manifest(self, name: str, yaml_text: str) -> Path:
        """Write ``manifests/<name>.yaml`` atomically (temp dotfile + ``os.replace``)."""
        return write_atomically(self.manifest_path(name), yaml_text)

    def copy_example(self, example: str, name: str | None = None) -> Path:
        """Put one of the README's examples (manifests/<example>.yaml) into this daemon's dir."""
        source = EXAMPLES_DIR / manifest_filename(example)
        return self.write_manifest(name or source.name, source.read_text())

    def remove_manifest(self, name: str) -> None:
        self.manifest_path(name).unlink()
