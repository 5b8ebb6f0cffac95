"""How much CPU a busy loop under a CFS limit got, judged from the guest's own counters.

The in-VM tests run under user-mode Linux or QEMU's emulation (tests/vm/run-in-vm.sh), where the
guest's clock and timers run late and unevenly with the host's load: a busy loop's share of the
guest's wall clock says more about the host than about the limit. ``cpu.stat`` says what the
limit did: time used, time held back (throttled), and the CFS periods the kernel counted.
"""

from __future__ import annotations

PERIOD_USEC = 100_000  # the CFS period kubelet (and so minikubelet) writes into cpu.max


def throttling(
    before: dict[str, int], after: dict[str, int], *, wall_seconds: float
) -> dict[str, float | int]:
    """What a busy loop under a CPU limit got, from the guest's own cpu.stat counters.

    ``duty``: the share of the time it was runnable that it ran (usage / (usage + time
    throttled)); ``per_period``: what it ran per CFS period the kernel counted, over the period's
    length; both are what the limit promises, whatever the guest's speed. ``wall_share`` (usage
    over the guest's wall clock) is only recorded: under QEMU's emulation the guest's clock and
    timers run late and uneven, and it says more about the host's load than about the limit.
    """
    usage = after["usage_usec"] - before["usage_usec"]
    throttled_usec = after["throttled_usec"] - before["throttled_usec"]
    periods = after["nr_periods"] - before["nr_periods"]
    return {
        "duty": round(usage / max(1, usage + throttled_usec), 3),
        "per_period": round(usage / max(1, periods * PERIOD_USEC), 3),
        "wall_share": round(usage / (wall_seconds * 1e6), 3),
        "periods": periods,
        "throttled": after["nr_throttled"] - before["nr_throttled"],
        "throttled_ms": round(throttled_usec / 1000),
    }


def check_throttled_to(limit: float, figures: dict[str, float | int]) -> None:
    """The loop ran no more than its quota (give or take the kernel's accounting slack), and
    was held back again and again: the limit bites."""
    what = f"a busy loop under a {limit:g} CPU limit: {figures}"
    assert 0 < figures["duty"] <= limit * 1.5, what
    assert figures["per_period"] <= limit * 1.5, what
    assert figures["throttled"] >= 10 and figures["throttled"] >= figures["periods"] // 3, what
