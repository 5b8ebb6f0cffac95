"""CrashLoopBackOff arithmetic: client-go's flowcontrol.Backoff, as kubelet's doBackOff uses it.

One entry per (pod UID, container name). When a container has exited and policy says restart:

- if the entry says we are still "in backoff since" the container's finish time, wait: the
  container shows Waiting/CrashLoopBackOff and a BackOff event is recorded;
- otherwise call ``next(key, finished_at)`` and start it now.

``next`` sets the delay to ``initial`` for a new (or expired) entry and doubles it, up to
``maximum``, for an existing one. So with kubelet's defaults the restarts come 0 s, 10 s, 20 s,
40 s ... 300 s after each exit: the first restart is immediate. An entry expires when the event
is more than ``reset`` after the last update (client-go: 2 × maximum = 10 minutes), which is
"the delay starts over after ten minutes of clean running".

Times are plain floats from one monotonic clock (the event loop's), so tests drive it with a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    backoff: float  # the current delay
    last_update: float  # the event time of the last next()


class Backoff:
    def __init__(
        self,
        *,
        initial: float = 10.0,
        maximum: float = 300.0,
        reset: float | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.reset = 2 * maximum if reset is None else reset
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > self.reset

    def next(self, key: str, event_time: float) -> None:
        """Record a (re)start caused by an exit at ``event_time``; grow the delay."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            self._entries[key] = _Entry(backoff=self.initial, last_update=event_time)
            return
        entry.backoff = min(entry.backoff * 2, self.maximum)
        entry.last_update = event_time

    def get(self, key: str) -> float:
        """The current delay for ``key`` (0 when there is none)."""
        entry = self._entries.get(key)
        return entry.backoff if entry is not None else 0.0

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds until a container that exited at ``event_time`` may start again (0: now)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or self._expired(now, entry):
            return 0.0
        return max(0.0, event_time + entry.backoff - now)

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        return self.remaining(key, event_time) > 0

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def entry(self, key: str) -> tuple[float, float] | None:
        """(delay, time of the last update) for ``key``, to persist it; None if there is none."""
        entry = self._entries.get(key)
        return (entry.backoff, entry.last_update) if entry is not None else None

    def restore(self, key: str, *, backoff: float, last_update: float) -> None:
        """Put back an entry a previous daemon persisted (times on this clock)."""
        self._entries[key] = _Entry(
            backoff=min(max(backoff, self.initial), self.maximum), last_update=last_update
        )


def format_go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds and above: 10s, 1m20s, 5m0s, 1h0m0s."""
    if seconds < 1:
        ms = round(seconds * 1000)
        return f"{ms}ms" if ms else "0s"
    total = round(seconds, 3)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec_text}s"
    if minutes:
        return f"{int(minutes)}m{sec_text}s"
    return f"{sec_text}s"
