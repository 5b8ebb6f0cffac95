"""Pods as the Kubernetes API serves them: resourceVersions, and the changes watches stream.

The status store says when a pod changes (``StatusStore.subscribe``); the feed gives every
change the next ``resourceVersion`` and keeps the last ``history`` changes, so that a watch can
start from any recent version (``?watch=true&resourceVersion=N``) and see exactly what happened
after it, as an API server's watch cache does. A version older than the history (or from
before this daemon started, or not yet reached) is ``410 Expired``: the client lists again.

resourceVersions are integers that grow across daemon restarts: the first one is the start
time in microseconds, and each change adds one. Clients treat them as opaque strings.

Cost: a change costs an append and, per open watch, a queue append; a pod's JSON is made
once per version, when the first reader asks for it. Nothing is done per pod per tick.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minikubelet.api.model import PodKey, dump
from minikubelet.server.errors import ApiError
from minikubelet.status.store import PodEntry, StatusStore

HISTORY = 1000  # changes kept for watches that start from a resourceVersion
WATCH_BACKLOG = 1000  # changes one watch may fall behind by before it is closed


@dataclass(slots=True, eq=False)
class Version:
    """One version of one pod, as served."""

    entry: PodEntry
    resource_version: int
    _obj: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def namespace(self) -> str:
        return str(self.entry.view.metadata.get("namespace") or "default")

    @property
    def name(self) -> str:
        return str(self.entry.view.metadata.get("name") or "")

    def obj(self) -> dict[str, Any]:
        """The v1 Pod, metadata.resourceVersion included (made once; callers must not edit)."""
        if self._obj is None:
            obj = dump(self.entry.view)
            obj["metadata"]["resourceVersion"] = str(self.resource_version)
            self._obj = obj
        return self._obj


@dataclass(frozen=True, slots=True)
class Change:
    resource_version: int
    old: Version | None  # None: the pod is new
    new: Version | None  # None: the pod is gone


class Expired(ApiError):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(410, f"too old resource version: {requested} ({oldest})")


class Watcher:
    """The changes after a watch's start, queued until its stream writes them."""

    def __init__(self, feed: PodFeed, backlog: int) -> None:
        self._feed = feed
        self._backlog = backlog
        self._queue: deque[Change] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False  # fell more than ``backlog`` changes behind: closed

    def offer(self, change: Change) -> None:
        if len(self._queue) >= self._backlog:
            self.overflowed = True
        else:
            self._queue.append(change)
        self._ready.set()

    async def next(self) -> Change | None:
        """The next change, or None once the watcher has overflowed."""
        while not self._queue:
            if self.overflowed:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            return None
        return self._queue.popleft()

    def close(self) -> None:
        self._feed._watchers.discard(self)


class PodFeed:
    def __init__(
        self,
        store: StatusStore,
        *,
        history: int = HISTORY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.start_version = int(clock() * 1_000_000)
        self._rv = self.start_version  # the newest resourceVersion handed out
        self._current: dict[PodKey, Version] = {}
        for e in store.entries():
            key = PodKey(
                f"{e.view.metadata.get('namespace', 'default')}/{e.view.metadata.get('name')}"
            )
            self._current[key] = Version(e, self._rv)
        self._history: deque[Change] = deque(maxlen=history)
        self._watchers: set[Watcher] = set()
        store.subscribe(self._changed)

    @property
    def resource_version(self) -> int:
        return self._rv

    def pods(self) -> list[Version]:
        """Every pod now, sorted by namespace and name."""
        return sorted(self._current.values(), key=lambda v: (v.namespace, v.name))

    def get(self, namespace: str, name: str) -> Version | None:
        return self._current.get(PodKey(f"{namespace}/{name}"))

    def _changed(self, key: PodKey, old: PodEntry | None, new: PodEntry | None) -> None:
        self._rv += 1
        before = self._current.get(key)
        after = Version(new, self._rv) if new is not None else None
        if after is None:
            self._current.pop(key, None)
        else:
            self._current[key] = after
        change = Change(self._rv, before, after)
        self._history.append(change)
        for watcher in self._watchers:
            watcher.offer(change)

    def watch(self, since: int | None, *, backlog: int = WATCH_BACKLOG) -> Watcher:
        """A watcher of the changes after ``since`` (None: from now). Raises Expired when the
        changes after ``since`` are no longer (or not yet) all known."""
        watcher = Watcher(self, backlog)
        if since is not None and since != self._rv:
            oldest = self._history[0].resource_version if self._history else self._rv + 1
            if since > self._rv or since < self.start_version or oldest > since + 1:
                raise Expired(since, oldest - 1)
            for change in self._history:
                if change.resource_version > since:
                    watcher.offer(change)
        self._watchers.add(watcher)
        return watcher
