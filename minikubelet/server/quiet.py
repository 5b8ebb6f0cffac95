"""One log line per period for a recurring condition, with how often it recurred since."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter


class QuietLog:
    """``say(condition, message)`` logs a warning at most once per ``period`` per condition."""

    MAX_CONDITIONS = 1024  # forget the oldest conditions beyond this many (client addresses)

    def __init__(self, period: float, *, logger: logging.Logger) -> None:
        self._period = period
        self._log = logger
        self._last: dict[str, float] = {}  # condition -> loop time it was last logged
        self._since: Counter[str] = Counter()  # condition -> occurrences not logged

    def say(self, condition: str, message: str) -> None:
        now = asyncio.get_running_loop().time()
        last = self._last.get(condition)
        if last is not None and now - last < self._period:
            self._since[condition] += 1
            return
        repeated = self._since.pop(condition, 0)
        suffix = f" ({repeated} more times since the last report)" if repeated else ""
        self._log.warning("%s%s", message, suffix)
        self._last.pop(condition, None)
        self._last[condition] = now
        while len(self._last) > self.MAX_CONDITIONS:
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._since.pop(oldest, None)
