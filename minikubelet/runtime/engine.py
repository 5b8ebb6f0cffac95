"""What each runtime needs from the host, and what it found missing: the engine report.

Every runtime the daemon offers checks its engine when the daemon starts (the process runtime:
util-linux and mount; podman: the service's version, OCI runtime and pod infra image, again each
time the runtime reconnects to it) and keeps one ``EngineReport`` up to date:

- ``missing(problem)``: something is missing or misconfigured; ``problem`` says what and names
  the Debian package to install. It is said once: the first time, and again only after it
  changed or was cleared, through ``warn`` (the daemon records a Node Warning event and logs it).
- ``waiting(detail)``: a state that is not an install problem, such as podman's service not
  answering (yet); shown in the health line, never as an event. A problem reported before is
  not forgotten: found again after a reconnect, it is not said a second time.
- ``ready()``: the engine is fine; the health line says ok again.

``health()`` is one ``/healthz?verbose`` line, read at each request, so it always shows the
current state. The check never fails healthz: the node works, the pods on that runtime wait with
the reason in their own FailedCreatePodSandBox events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Warn = Callable[[str, str], None]
"""Called with (runtime name, problem) when a runtime reports a new problem."""


class EngineReport:
    """The current state of one runtime's engine on this host."""

    def __init__(self, runtime: str, *, warn: Warn | None = None) -> None:
        self.runtime = runtime
        self._warn = warn
        self._problem: str | None = None  # the missing piece, as last reported
        self._detail = ""  # what the health line says ("" = ok)

    @property
    def problem(self) -> str | None:
        """What is missing right now, or None."""
        return self._problem

    def missing(self, problem: str) -> None:
        self._detail = problem
        if problem == self._problem:
            return
        self._problem = problem
        log.warning("%s runtime: %s", self.runtime, problem)
        if self._warn is not None:
            self._warn(self.runtime, problem)

    def waiting(self, detail: str) -> None:
        # The last problem stays known: the same one found after a reconnect is not news.
        self._detail = detail

    def ready(self) -> None:
        if self._problem is not None:
            log.info("%s runtime: ready (%s is resolved)", self.runtime, self._problem)
        self._problem = None
        self._detail = ""

    def health(self) -> tuple[str, bool, str]:
        """(name, ok, detail) for /healthz?verbose: ok, or a warning with the detail."""
        return (f"runtime-{self.runtime}", True, self._detail)
