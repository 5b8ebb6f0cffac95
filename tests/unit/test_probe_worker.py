"""ProbeWorker's decisions (kubelet worker.go doProbe) and ProbeManager's answers.

The handler is scripted: a ProbeHandler that returns the outcomes a test lists, so each test
reads as the sequence of probe results it feeds in. Time is a fake clock the tests advance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from minikubelet.api.model import Container, Probe
from minikubelet.probes.handlers import ProbeHandler, ProbeOutcome, ProbeResult
from minikubelet.probes.results import ProbeKind, ProbeUpdate, ResultsCache
from minikubelet.probes.worker import ProbeManager, ProbeWorker

OK = ProbeOutcome(ProbeResult.SUCCESS, "")
BAD = ProbeOutcome(ProbeResult.FAILURE, "HTTP probe failed with statuscode: 500")
ERR = ProbeOutcome(ProbeResult.UNKNOWN, 'strconv.Atoi: parsing "http": invalid syntax')
WARN = ProbeOutcome(ProbeResult.WARNING, "Probe terminated redirects, Response body: moved")


class ScriptedHandler:
    """Returns the scripted outcomes in order, then repeats the last one."""

    def __init__(self, outcomes: Iterable[ProbeOutcome] = ()) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def then(self, *outcomes: ProbeOutcome) -> None:
        self.outcomes.extend(outcomes)

    async def probe(self) -> ProbeOutcome:
        self.calls += 1
        if len(self.outcomes) > 1:
            return self.outcomes.pop(0)
        return self.outcomes[0]


_: ProbeHandler = ScriptedHandler([OK])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_probe(**fields: int) -> Probe:
    return Probe.model_validate({"exec": {"command": ["true"]}, "periodSeconds": 1, **fields})


class Harness:
    def __init__(self, kind: ProbeKind, *, started: bool = True, **probe_fields: int) -> None:
        self.clock = Clock()
        self.results = ResultsCache()
        self.updates = self.results.subscribe()
        self.handler = ScriptedHandler([OK])
        self.events: list[tuple[str, str, str]] = []
        self.started = started
        self.worker = ProbeWorker(
            kind=kind,
            probe=make_probe(**probe_fields),
            handler=self.handler,
            results=self.results,
            container_name="app",
            on_event=lambda *event: self.events.append(event),
            is_started=lambda: self.started,
            pod="default/web-node",
            clock=self.clock,
        )

    def start(self, container_id: str = "c1", *, age: float = 0.0) -> None:
        self.worker.container_started(container_id, started_at=self.clock.now - age)

    def result(self, container_id: str = "c1") -> ProbeResult | None:
        return self.results.get(container_id, self.worker.kind)

    def drain(self) -> list[ProbeUpdate]:
        out = []
        while not self.updates.empty():
            out.append(self.updates.get_nowait())
        return out

    async def ticks(self, n: int) -> None:
        for _ in range(n):
            assert await self.worker.probe_once()
            self.clock.now += 1


@pytest.mark.parametrize(
    ("kind", "initial"),
    [
        (ProbeKind.READINESS, ProbeResult.FAILURE),
        (ProbeKind.LIVENESS, ProbeResult.SUCCESS),
        (ProbeKind.STARTUP, ProbeResult.UNKNOWN),
    ],
)
async def test_new_instance_gets_the_kinds_initial_result(
    kind: ProbeKind, initial: ProbeResult
) -> None:
    h = Harness(kind, started=kind is not ProbeKind.STARTUP)
    h.start("c1")
    assert h.result("c1") is initial
    assert h.drain() == [ProbeUpdate("app", "c1", kind, initial)]


async def test_no_instance_means_no_probe():
    h = Harness(ProbeKind.LIVENESS)
    assert await h.worker.probe_once()
    assert h.handler.calls == 0


async def test_liveness_failure_is_cached_only_at_failure_threshold():
    h = Harness(ProbeKind.LIVENESS, failureThreshold=3)
    h.handler.outcomes = [BAD]
    h.start()
    h.drain()
    await h.ticks(2)
    assert h.result() is ProbeResult.SUCCESS
    assert h.drain() == []
    await h.ticks(1)
    assert h.result() is ProbeResult.FAILURE
    assert h.drain() == [ProbeUpdate("app", "c1", ProbeKind.LIVENESS, ProbeResult.FAILURE)]
    # Every failed attempt is an event, below the threshold too.
    assert (
        h.events
        == [
            (
                "Warning",
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500",
            )
        ]
        * 3
    )


async def test_a_success_breaks_the_failure_run():
    h = Harness(ProbeKind.LIVENESS, failureThreshold=2)
    h.handler.outcomes = [BAD, OK, BAD, OK, BAD, BAD, OK]
    h.start()
    await h.ticks(4)
    assert h.result() is ProbeResult.SUCCESS
    await h.ticks(2)
    assert h.result() is ProbeResult.FAILURE


async def test_readiness_needs_success_threshold_in_a_row_and_flips_back():
    h = Harness(ProbeKind.READINESS, successThreshold=2, failureThreshold=1)
    h.handler.outcomes = [OK, BAD, OK, OK, BAD]
    h.start()
    h.drain()
    await h.ticks(3)
    assert h.result() is ProbeResult.FAILURE
    assert h.drain() == []  # FAILURE was already cached: no change, no update
    await h.ticks(1)
    assert h.result() is ProbeResult.SUCCESS
    await h.ticks(1)
    assert h.result() is ProbeResult.FAILURE
    assert [u.result for u in h.drain()] == [ProbeResult.SUCCESS, ProbeResult.FAILURE]


async def test_initial_delay_skips_probing_until_it_has_passed():
    h = Harness(ProbeKind.LIVENESS, initialDelaySeconds=5)
    h.start(age=0)
    h.clock.now += 4.9
    assert await h.worker.probe_once()
    assert h.handler.calls == 0
    h.clock.now += 0.1
    assert await h.worker.probe_once()
    assert h.handler.calls == 1


async def test_initial_delay_counts_from_container_start_not_worker_start():
    h = Harness(ProbeKind.LIVENESS, initialDelaySeconds=5)
    h.start(age=10)  # adopted: running for 10s already
    assert await h.worker.probe_once()
    assert h.handler.calls == 1


async def test_liveness_and_readiness_wait_while_not_started():
    for kind in (ProbeKind.LIVENESS, ProbeKind.READINESS):
        h = Harness(kind, started=False)
        h.start()
        await h.ticks(3)
        assert h.handler.calls == 0
        h.started = True
        await h.ticks(1)
        assert h.handler.calls == 1


async def test_startup_probe_idles_once_started():
    h = Harness(ProbeKind.STARTUP, started=False, failureThreshold=5)
    h.handler.outcomes = [BAD, OK]
    h.start()
    await h.ticks(2)
    assert h.result() is ProbeResult.SUCCESS
    h.started = True
    await h.ticks(3)
    assert h.handler.calls == 2


async def test_liveness_holds_after_failure_until_a_new_instance():
    h = Harness(ProbeKind.LIVENESS, failureThreshold=1)
    h.handler.outcomes = [BAD, OK]
    h.start("c1")
    await h.ticks(1)
    assert h.result("c1") is ProbeResult.FAILURE
    assert h.worker.on_hold
    await h.ticks(5)
    assert h.handler.calls == 1  # held: no probing of a container that is being killed
    assert h.result("c1") is ProbeResult.FAILURE

    h.worker.container_stopped()
    h.start("c2")
    assert h.results.get("c1", ProbeKind.LIVENESS) is None  # the old instance's result is gone
    assert h.result("c2") is ProbeResult.SUCCESS
    assert not h.worker.on_hold
    await h.ticks(1)
    assert h.handler.calls == 2


async def test_startup_failure_at_threshold_holds_too():
    h = Harness(ProbeKind.STARTUP, started=False, failureThreshold=2)
    h.handler.outcomes = [BAD]
    h.start()
    await h.ticks(2)
    assert h.result() is ProbeResult.FAILURE
    await h.ticks(3)
    assert h.handler.calls == 2


async def test_readiness_does_not_hold_after_failure():
    h = Harness(ProbeKind.READINESS, failureThreshold=1)
    h.handler.outcomes = [BAD]
    h.start()
    await h.ticks(3)
    assert h.handler.calls == 3


async def test_errors_are_retried_three_times_then_discarded_uncounted():
    h = Harness(ProbeKind.LIVENESS, failureThreshold=2)
    h.handler.outcomes = [BAD, ERR, ERR, ERR, BAD]
    h.start()
    await h.ticks(1)  # BAD: run 1
    await h.ticks(1)  # three errored attempts: discarded, the run is still 1
    assert h.handler.calls == 4
    assert h.result() is ProbeResult.SUCCESS
    await h.ticks(1)  # BAD: run 2 -> FAILURE
    assert h.result() is ProbeResult.FAILURE
    assert (
        "Warning",
        "Unhealthy",
        'Liveness probe errored and resulted in unknown state: strconv.Atoi: parsing "http": '
        "invalid syntax",
    ) in h.events


async def test_an_error_then_a_result_within_one_tick_counts_the_result():
    h = Harness(ProbeKind.READINESS)
    h.handler.outcomes = [ERR, OK]
    h.start()
    await h.ticks(1)
    assert h.handler.calls == 2
    assert h.result() is ProbeResult.SUCCESS
    assert h.events == []


async def test_warning_counts_as_success_with_a_probe_warning_event():
    h = Harness(ProbeKind.READINESS)
    h.handler.outcomes = [WARN]
    h.start()
    await h.ticks(1)
    assert h.result() is ProbeResult.SUCCESS
    assert h.events == [
        ("Warning", "ProbeWarning", "Readiness probe warning: " + WARN.output),
    ]


async def test_non_running_container_is_failure_and_final_ends_the_worker():
    h = Harness(ProbeKind.READINESS)
    h.start()
    await h.ticks(1)
    assert h.result() is ProbeResult.SUCCESS
    h.worker.container_stopped()
    assert await h.worker.probe_once()
    assert h.result() is ProbeResult.FAILURE
    assert h.handler.calls == 1
    h.worker.container_stopped(final=True)
    assert not await h.worker.probe_once()


async def test_a_result_for_an_instance_that_changed_mid_probe_is_dropped():
    h = Harness(ProbeKind.LIVENESS, failureThreshold=1)
    gate = asyncio.Event()

    class Slow:
        async def probe(self) -> ProbeOutcome:
            await gate.wait()
            return BAD

    h.worker._handler = Slow()
    h.start("c1")
    probing = asyncio.create_task(h.worker.probe_once(), name="probe under test")
    await asyncio.sleep(0)
    h.worker.container_stopped()
    h.start("c2")
    gate.set()
    assert await probing
    assert h.result("c2") is ProbeResult.SUCCESS
    assert h.results.get("c1", ProbeKind.LIVENESS) is None
    assert h.events == []


async def test_counting_starts_over_for_a_new_instance():
    h = Harness(ProbeKind.READINESS, successThreshold=3)
    h.handler.outcomes = [OK]
    h.start("c1")
    await h.ticks(5)
    assert h.result("c1") is ProbeResult.SUCCESS
    h.worker.container_stopped()
    h.start("c2")
    await h.ticks(2)
    assert h.result("c2") is ProbeResult.FAILURE
    await h.ticks(1)
    assert h.result("c2") is ProbeResult.SUCCESS


# --- the loop ------------------------------------------------------------------------------


class FakeSleeper:
    """Advances the fake clock instead of sleeping; a set wakeup ends the sleep at once."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []

    async def __call__(self, delay: float, wakeup: asyncio.Event) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(0)  # let the test trigger or stop first
        if not wakeup.is_set():
            self.clock.now += delay


def looped(
    kind: ProbeKind,
    *,
    stop_after: int,
    daemon_started_at: float | None = None,
    on_probe: Callable[[ProbeWorker, int], None] | None = None,
    **fields: int,
):
    """A worker whose handler records the clock at each attempt and stops it after stop_after."""
    clock = Clock()
    sleeper = FakeSleeper(clock)
    handler = ScriptedHandler([OK])
    probe_times: list[float] = []

    class Recording:
        async def probe(self) -> ProbeOutcome:
            probe_times.append(clock.now)
            if on_probe is not None:
                on_probe(worker, len(probe_times))
            if len(probe_times) >= stop_after:
                worker.stop()
            return await handler.probe()

    worker = ProbeWorker(
        kind=kind,
        probe=make_probe(**fields),
        handler=Recording(),
        results=ResultsCache(),
        container_name="app",
        on_event=lambda *_: None,
        is_started=lambda: True,
        clock=clock,
        sleeper=sleeper,
        rng=lambda: 0.5,
        daemon_started_at=daemon_started_at,
    )
    return worker, clock, probe_times


async def test_run_probes_every_period_on_a_fixed_grid():
    worker, clock, times = looped(ProbeKind.LIVENESS, stop_after=4, periodSeconds=10)
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert times == [1000.0, 1010.0, 1020.0, 1030.0]


async def test_run_drops_ticks_missed_by_a_slow_probe_without_drifting():
    def slow_second_attempt(worker: ProbeWorker, count: int) -> None:
        if count == 2:
            clock.now += 25  # this attempt takes 25s

    worker, clock, times = looped(
        ProbeKind.LIVENESS, stop_after=4, on_probe=slow_second_attempt, periodSeconds=10
    )
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert times == [1000.0, 1010.0, 1040.0, 1050.0]


async def test_trigger_probes_now_and_restarts_the_period():
    def trigger_first(worker: ProbeWorker, count: int) -> None:
        if count == 1:
            worker.trigger()

    worker, clock, times = looped(
        ProbeKind.READINESS, stop_after=3, on_probe=trigger_first, periodSeconds=10
    )
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert times == [1000.0, 1000.0, 1010.0]


async def test_jitter_only_in_the_first_period_after_a_daemon_restart():
    # A restarted daemon (started 2s ago) -> the first probe after 0.5 * period.
    worker, clock, times = looped(
        ProbeKind.LIVENESS, stop_after=2, periodSeconds=10, daemon_started_at=1000.0 - 2
    )
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert times == [1005.0, 1015.0]

    # Not a restart (no daemon_started_at given): no jitter.
    worker, clock, times = looped(ProbeKind.LIVENESS, stop_after=1, periodSeconds=10)
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert times == [1000.0]

    # The daemon has been up longer than a period: no jitter.
    worker, clock, times = looped(
        ProbeKind.LIVENESS, stop_after=1, periodSeconds=10, daemon_started_at=1000.0 - 30
    )
    worker.container_started("c1", started_at=clock.now - 60)
    await worker.run()
    assert times == [1000.0]


async def test_run_removes_its_result_when_it_ends():
    worker, clock, _ = looped(ProbeKind.READINESS, stop_after=1, periodSeconds=1)
    worker.container_started("c1", started_at=clock.now)
    await worker.run()
    assert worker._results.get("c1", ProbeKind.READINESS) is None


async def test_run_stops_promptly_with_the_real_sleeper():
    results = ResultsCache()
    worker = ProbeWorker(
        kind=ProbeKind.LIVENESS,
        probe=make_probe(periodSeconds=3600),
        handler=ScriptedHandler([OK]),
        results=results,
        container_name="app",
        on_event=lambda *_: None,
        is_started=lambda: True,
    )
    worker.container_started("c1", started_at=asyncio.get_running_loop().time())
    task = asyncio.create_task(worker.run(), name="probe loop under test")
    await asyncio.sleep(0.05)
    worker.stop()
    async with asyncio.timeout(1):
        await task


# --- the manager ---------------------------------------------------------------------------


def container(**probes: Probe) -> Container:
    return Container.model_validate(
        {
            "name": "app",
            "image": "busybox",
            **{k: v.model_dump(by_alias=True) for k, v in probes.items()},
        }
    )


class Manager:
    def __init__(self, spec: Container) -> None:
        self.clock = Clock()
        self.wall = datetime(2025, 1, 1, tzinfo=UTC)
        self.handlers: dict[ProbeKind, ScriptedHandler] = {}
        self.events: list[tuple[str, str, str, str]] = []

        async def no_exec(cid, command, timeout):  # pragma: no cover - handlers are scripted
            raise AssertionError("no exec in these tests")

        def factory(c: Container, kind: ProbeKind, probe: Probe) -> ProbeHandler:
            self.handlers[kind] = ScriptedHandler([OK])
            return self.handlers[kind]

        self.manager = ProbeManager(
            pod="default/web-node",
            containers=[spec],
            pod_ip="127.0.0.1",
            exec_in_container=no_exec,
            on_event=lambda *event: self.events.append(event),
            clock=self.clock,
            wall_clock=lambda: self.wall,
            handler_factory=factory,
        )
        self.updates = self.manager.results.subscribe()

    def worker(self, kind: ProbeKind) -> ProbeWorker:
        worker = self.manager.worker("app", kind)
        assert worker is not None
        return worker


async def test_manager_without_probes_is_ready_while_running():
    m = Manager(container())
    assert not m.manager.is_ready("app")
    m.manager.container_started("app", container_id="c1", started_at=m.wall)
    assert m.manager.is_started("app")
    assert m.manager.is_ready("app")
    m.manager.container_exited("app", container_id="c1")
    assert not m.manager.is_ready("app")
    assert not m.manager.is_started("app")


async def test_manager_startup_gates_readiness_and_liveness():
    probe = make_probe(failureThreshold=3)
    m = Manager(container(startupProbe=probe, readinessProbe=probe, livenessProbe=probe))
    m.manager.container_started("app", container_id="c1", started_at=m.wall)
    startup, readiness, liveness = (
        m.worker(ProbeKind.STARTUP),
        m.worker(ProbeKind.READINESS),
        m.worker(ProbeKind.LIVENESS),
    )
    m.handlers[ProbeKind.STARTUP].outcomes = [BAD, OK]
    assert not m.manager.is_started("app")
    for worker in (readiness, liveness):
        assert await worker.probe_once()
    assert m.handlers[ProbeKind.READINESS].calls == 0
    assert m.handlers[ProbeKind.LIVENESS].calls == 0

    assert await startup.probe_once()
    assert not m.manager.is_started("app")
    assert await startup.probe_once()
    assert m.manager.is_started("app")
    assert not m.manager.is_ready("app")  # readiness starts at FAILURE
    assert readiness._triggered  # the startup success asked for a readiness probe at once

    assert await readiness.probe_once()
    assert m.manager.is_ready("app")
    assert await liveness.probe_once()
    assert m.handlers[ProbeKind.LIVENESS].calls == 1
    assert await startup.probe_once()
    assert m.handlers[ProbeKind.STARTUP].calls == 2  # idles once started


async def test_manager_reports_the_failed_probe_of_the_running_instance_only():
    m = Manager(container(livenessProbe=make_probe(failureThreshold=1)))
    m.manager.container_started("app", container_id="c1", started_at=m.wall)
    m.handlers[ProbeKind.LIVENESS].outcomes = [BAD]
    assert await m.worker(ProbeKind.LIVENESS).probe_once()
    assert m.manager.failed_probe("app") is ProbeKind.LIVENESS
    assert m.updates.get_nowait() == ProbeUpdate(
        "app", "c1", ProbeKind.LIVENESS, ProbeResult.SUCCESS
    )
    assert m.updates.get_nowait() == ProbeUpdate(
        "app", "c1", ProbeKind.LIVENESS, ProbeResult.FAILURE
    )
    assert m.events == [
        ("app", "Warning", "Unhealthy", "Liveness probe failed: " + BAD.output),
    ]
    m.manager.container_exited("app", container_id="c1")
    assert m.manager.failed_probe("app") is None
    m.manager.container_started("app", container_id="c2", started_at=m.wall)
    assert m.manager.failed_probe("app") is None


async def test_manager_converts_wall_clock_start_for_initial_delay():
    m = Manager(container(livenessProbe=make_probe(initialDelaySeconds=30)))
    m.manager.container_started("app", container_id="c1", started_at=m.wall - timedelta(seconds=31))
    assert await m.worker(ProbeKind.LIVENESS).probe_once()
    assert m.handlers[ProbeKind.LIVENESS].calls == 1


async def test_manager_ignores_the_exit_of_an_older_instance():
    m = Manager(container(readinessProbe=make_probe()))
    m.manager.container_started("app", container_id="c2", started_at=m.wall)
    m.manager.container_exited("app", container_id="c1")
    assert m.manager.is_started("app")


async def test_manager_runs_named_tasks_and_closes_cleanly():
    probe = make_probe(periodSeconds=3600)
    m = Manager(container(readinessProbe=probe, livenessProbe=probe))
    async with m.manager:
        await asyncio.sleep(0)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "probe default/web-node/app/readiness" in names
        assert "probe default/web-node/app/liveness" in names
        assert "probes default/web-node" in names
    names = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    assert not any(n.startswith("probe") for n in names)


async def test_manager_stop_liveness_and_startup_leaves_readiness_running():
    probe = make_probe(periodSeconds=3600)
    m = Manager(container(startupProbe=probe, readinessProbe=probe, livenessProbe=probe))
    m.manager.container_started("app", container_id="c1", started_at=m.wall)
    task = asyncio.create_task(m.manager.run(), name="probes under test")
    await asyncio.sleep(0)
    m.manager.stop_liveness_and_startup()
    for _ in range(5):
        await asyncio.sleep(0)
    assert m.manager.worker("app", ProbeKind.LIVENESS) is None
    assert m.manager.worker("app", ProbeKind.STARTUP) is None
    assert m.manager.worker("app", ProbeKind.READINESS) is not None
    assert m.manager.is_started("app")  # no startup probe any more: started while running
    m.manager.stop()
    await task


async def test_manager_exec_runs_in_the_current_instance():
    calls = []

    class Result:
        exit_code = 0
        output = b"ok"

    async def exec_in(cid, command, timeout):
        calls.append((cid, list(command), timeout))
        return Result()

    spec = Container.model_validate(
        {
            "name": "app",
            "env": [{"name": "FILE", "value": "/tmp/healthy"}],
            "livenessProbe": {"exec": {"command": ["cat", "$(FILE)"]}, "timeoutSeconds": 2},
        }
    )
    manager = ProbeManager(
        pod="default/web-node",
        containers=[spec],
        pod_ip="127.0.0.1",
        exec_in_container=exec_in,
        on_event=lambda *_: None,
    )
    manager.container_started("app", container_id="c7", started_at=datetime.now(UTC))
    worker = manager.worker("app", ProbeKind.LIVENESS)
    assert worker is not None
    assert await worker.probe_once()
    assert calls == [("c7", ["cat", "/tmp/healthy"], 2.0)]
    await manager.aclose()
