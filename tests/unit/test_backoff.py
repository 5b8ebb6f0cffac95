"""The CrashLoopBackOff schedule, with kubelet's defaults, on a fake clock."""

from __future__ import annotations

from minikubelet.pods.backoff import Backoff, format_go_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_crash_loop(
    backoff: Backoff, clock: FakeClock, *, exits: int, runs_for: float
) -> list[float]:
    """A container that runs ``runs_for`` seconds and exits, restarted as soon as allowed.
    Returns the delay between each exit and the next start."""
    delays = []
    for _ in range(exits):
        clock.now += runs_for
        finished = clock.now
        wait = backoff.remaining("pod/c", finished)
        clock.now += wait
        assert not backoff.in_backoff_since("pod/c", finished)
        backoff.next("pod/c", finished)
        delays.append(wait)
    return delays


def test_default_schedule_is_immediate_then_10s_doubling_to_300s():
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    delays = run_crash_loop(backoff, clock, exits=9, runs_for=1.0)
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_waiting_message_delay_is_the_current_backoff():
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    run_crash_loop(backoff, clock, exits=2, runs_for=1.0)
    assert format_go_duration(backoff.get("pod/c")) == "20s"


def test_delay_starts_over_after_ten_minutes_of_clean_running():
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    assert run_crash_loop(backoff, clock, exits=5, runs_for=1.0) == [0, 10, 20, 40, 80]
    # Runs for just over 10 minutes since the last restart: the entry has expired.
    assert run_crash_loop(backoff, clock, exits=3, runs_for=601.0) == [0, 0, 0]
    # ...and a fast crash after that starts the schedule over.
    assert run_crash_loop(backoff, clock, exits=3, runs_for=1.0) == [10, 20, 40]


def test_a_long_run_short_of_ten_minutes_still_backs_off():
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    run_crash_loop(backoff, clock, exits=3, runs_for=1.0)
    # kubelet measures the backoff from the exit, however long the container ran.
    assert run_crash_loop(backoff, clock, exits=1, runs_for=580.0) == [40]
    assert backoff.get("pod/c") == 80


def test_custom_settings_scale_the_schedule():
    clock = FakeClock()
    backoff = Backoff(initial=0.5, maximum=2.0, clock=clock)
    assert run_crash_loop(backoff, clock, exits=6, runs_for=0.1) == [0, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_go_duration_format():
    assert [format_go_duration(s) for s in (10, 20, 40, 80, 160, 300, 3600)] == [
        "10s",
        "20s",
        "40s",
        "1m20s",
        "2m40s",
        "5m0s",
        "1h0m0s",
    ]
    assert format_go_duration(0.5) == "500ms"
