"""The pods as the outside world sees them: metadata, defaulted spec and live PodStatus.

Pod workers write here; the HTTP API only reads here. Nothing in this module decides anything
about a pod: it keeps the latest view of each one, and writes it to the state dir so that a
restarted daemon can still show what happened.

Persistence is write-behind: a change marks the store dirty and wakes one flusher task, which
writes a single JSON file atomically (temp file, fsync, rename) at most once per
``flush_interval``. An idle node therefore costs nothing per pod per tick, and a burst of
status changes from a hundred pods is one write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from minikubelet.api.model import PodKey, PodStatus, PodView, dump

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodEntry:
    view: PodView  # what GET /pods serves for this pod
    runtime: str  # the runtime class it runs on
    source: str  # the manifest file it came from

    @property
    def uid(self) -> str:
        return str(self.view.metadata.get("uid", ""))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StatusStore:
    def __init__(self, state_file: Path | None, *, flush_interval: float = 0.5) -> None:
        self._entries: dict[PodKey, PodEntry] = {}
        self._state_file = state_file
        self._flush_interval = flush_interval
        self._dirty = asyncio.Event()
        self._writing: asyncio.Task[None] | None = None  # the write in a thread, if any

    # --- reads (the API) ----------------------------------------------------------------------

    def entries(self) -> list[PodEntry]:
        return list(self._entries.values())

    def get(self, key: PodKey) -> PodEntry | None:
        return self._entries.get(key)

    def find(self, namespace: str, name: str) -> PodEntry | None:
        return self._entries.get(PodKey(f"{namespace}/{name}"))

    # --- writes (the pod workers) ---------------------------------------------------------------

    def put(self, key: PodKey, entry: PodEntry) -> None:
        self._entries[key] = entry
        self._mark_dirty()

    def set_status(self, key: PodKey, status: PodStatus) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.view.status == status:
            return
        self._entries[key] = PodEntry(
            view=entry.view.model_copy(update={"status": status}),
            runtime=entry.runtime,
            source=entry.source,
        )
        self._mark_dirty()

    def remove(self, key: PodKey, *, uid: str | None = None) -> None:
        """Drop a pod's entry; with ``uid``, only if the entry is still that pod instance."""
        entry = self._entries.get(key)
        if entry is None or (uid is not None and entry.uid != uid):
            return
        del self._entries[key]
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        self._dirty.set()

    # --- persistence ----------------------------------------------------------------------------

    def load(self) -> list[PodEntry]:
        """Read what the previous daemon left. Returned, not installed: workers decide."""
        if self._state_file is None or not self._state_file.exists():
            return []
        try:
            raw = json.loads(self._state_file.read_bytes())
            return [
                PodEntry(
                    view=PodView.model_validate(item["view"]),
                    runtime=str(item["runtime"]),
                    source=str(item["source"]),
                )
                for item in raw.get("pods", [])
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable status file %s: %s", self._state_file, exc)
            return []

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
        if self._state_file is None:
            return
        self._dirty.clear()
        data = self._serialise(self._entries.values())
        # Shielded: a thread cannot be cancelled, so run_flusher's last write must wait for it
        # (two writers of one temp file race, and an older snapshot could land last).
        self._writing = asyncio.ensure_future(
            asyncio.to_thread(write_atomically, self._state_file, data)
        )
        await asyncio.shield(self._writing)

    async def run_flusher(self) -> None:
        """Write the store whenever it changed, at most once per flush_interval. Runs forever;
        flushes once more when cancelled so that a clean shutdown loses nothing."""
        try:
            while True:
                await self._dirty.wait()
                await asyncio.sleep(self._flush_interval)
                await self.flush()
        finally:
            if self._writing is not None:
                await asyncio.wait([self._writing])
            if self._dirty.is_set():
                data = self._serialise(self._entries.values())
                if self._state_file is not None:
                    write_atomically(self._state_file, data)
