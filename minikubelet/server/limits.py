"""Per-client limits on long-running requests: log follows, watches (and exec sessions).

Each of these holds a connection, a task and a buffer for as long as the client likes, so one
client (an address) may hold at most a configured number of each kind at once
(``api.maxFollowsPerClient``, ``api.maxWatchesPerClient``). One more is answered 429
TooManyRequests with ``Retry-After``, as the API server answers its own max-in-flight limit.
The connection limit for all clients together is the listener's (``listener.serve``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from minikubelet.server.errors import ApiError


class PerClientLimit:
    """At most ``limit`` concurrent holds per client address."""

    def __init__(self, *, what: str, limit: int, setting: str) -> None:
        self.what = what  # "follow=true streams", "watches"
        self.limit = limit
        self.setting = setting  # the config key, named in the refusal
        self._held: Counter[str] = Counter()  # client -> holds now

    def held(self, client: str) -> int:
        return self._held[client]

    @contextlib.contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """Count one for ``client`` while the block runs; raise a 429 ApiError if full."""
        if self._held[client] >= self.limit:
            raise ApiError(
                429,
                f"too many {self.what} from {client}: at most {self.limit} {self.what} per "
                f"client ({self.setting})",
            )
        self._held[client] += 1
        try:
            yield
        finally:
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]
