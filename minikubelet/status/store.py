"""The pods as the outside world sees them: metadata, defaulted spec and live PodStatus.

Pod workers write here; the HTTP API only reads here. Nothing in this module decides anything
about a pod: it keeps the latest view of each one, and writes it to the state dir so that a
restarted daemon can still show what happened.

Persistence is write-behind (``statefile.StateFile``): a change marks the store dirty and wakes
one flusher task, which writes a single JSON file atomically at most once per
``flush_interval``. An idle node therefore costs nothing per pod per tick, and a burst of
status changes from a hundred pods is one write. A write that fails is retried and reported;
it never stops the daemon, and the API keeps serving from memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minikubelet.api.model import PodKey, PodStatus, PodView, dump
from minikubelet.status.statefile import RETRY_MAX, Report, StateFile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodEntry:
    view: PodView  # what GET /pods serves for this pod
    runtime: str  # the runtime class it runs on
    source: str  # the manifest file it came from

    @property
    def uid(self) -> str:
        return str(self.view.metadata.get("uid", ""))


Listener = Callable[[PodKey, "PodEntry | None", "PodEntry | None"], None]
"""(key, old entry, new entry) after every change; None for a pod added or removed."""


class StatusStore:
    def __init__(
        self,
        state_file: Path | None,
        *,
        flush_interval: float = 0.5,
        retry_max: float = RETRY_MAX,
        report: Report | None = None,
    ) -> None:
        """``report``: where write failures and a set-aside file are told (node events);
        ``retry_max``: the longest wait between attempts at a failing write."""
        self._entries: dict[PodKey, PodEntry] = {}
        self._listeners: list[Listener] = []  # told of every change (the API's watches)
        self.file = StateFile(
            state_file,
            what="status",
            serialise=lambda: self._serialise(self._entries.values()),
            flush_interval=flush_interval,
            retry_max=retry_max,
            report=report,
        )

    # --- reads (the API) ----------------------------------------------------------------------

    def entries(self) -> list[PodEntry]:
        return list(self._entries.values())

    def get(self, key: PodKey) -> PodEntry | None:
        return self._entries.get(key)

    def find(self, namespace: str, name: str) -> PodEntry | None:
        return self._entries.get(PodKey(f"{namespace}/{name}"))

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change, synchronously; it must not raise or block."""
        self._listeners.append(listener)

    # --- writes (the pod workers) ---------------------------------------------------------------

    def put(self, key: PodKey, entry: PodEntry) -> None:
        old = self._entries.get(key)
        self._entries[key] = entry
        self._mark_dirty()
        self._tell(key, old, entry)

    def set_status(self, key: PodKey, status: PodStatus) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.view.status == status:
            return
        new = PodEntry(
            view=entry.view.model_copy(update={"status": status}),
            runtime=entry.runtime,
            source=entry.source,
        )
        self._entries[key] = new
        self._mark_dirty()
        self._tell(key, entry, new)

    def remove(self, key: PodKey, *, uid: str | None = None) -> None:
        """Drop a pod's entry; with ``uid``, only if the entry is still that pod instance."""
        entry = self._entries.get(key)
        if entry is None or (uid is not None and entry.uid != uid):
            return
        del self._entries[key]
        self._mark_dirty()
        self._tell(key, entry, None)

    def _mark_dirty(self) -> None:
        self.file.mark_dirty()

    def _tell(self, key: PodKey, old: PodEntry | None, new: PodEntry | None) -> None:
        for listener in self._listeners:
            listener(key, old, new)

    # --- persistence ----------------------------------------------------------------------------

    def load(self) -> list[PodEntry]:
        """Read what the previous daemon left. Returned, not installed: workers decide.
        A file of the wrong shape is set aside (and reported) and reads as nothing."""
        return self.file.load(_parse_entries) or []

    def _serialise(self, entries: Iterable[PodEntry]) -> bytes:
        return json.dumps(
            {
                "pods": [
                    {"view": dump(e.view), "runtime": e.runtime, "source": e.source}
                    for e in entries
                ]
            },
            separators=(",", ":"),
        ).encode()

    async def flush(self) -> None:
        """Write the state file now (raises what the write raised)."""
        await self.file.flush()

    async def run_flusher(self) -> None:
        """Write the store whenever it changed, at most once per flush_interval, retrying
        failed writes. Runs forever; flushes once more when cancelled."""
        await self.file.run()


def _parse_entries(raw: Any) -> list[PodEntry]:
    """status.json's contents; raises on anything but ``{"pods": [{view, runtime, source}]}``
    with a named pod in each view."""
    if not isinstance(raw, dict) or not isinstance(raw.get("pods"), list):
        raise ValueError('not an object with a "pods" list')
    entries = []
    for item in raw["pods"]:
        if not isinstance(item, dict):
            raise ValueError("a pod entry is not an object")
        view = PodView.model_validate(item["view"])
        for key in ("name", "uid"):
            if not isinstance(view.metadata.get(key), str) or not view.metadata[key]:
                raise ValueError(f"a pod entry has no metadata.{key}")
        namespace = view.metadata.get("namespace", "default")
        if not isinstance(namespace, str):
            raise ValueError("a pod entry has a metadata.namespace that is not a string")
        if not isinstance(item["runtime"], str) or not isinstance(item["source"], str):
            raise ValueError("a pod entry's runtime or source is not a string")
        entries.append(PodEntry(view=view, runtime=item["runtime"], source=item["source"]))
    return entries
