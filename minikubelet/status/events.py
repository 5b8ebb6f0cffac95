"""The event log: kubelet's events, aggregated the way the API server's recorder does it.

An event is keyed by (involved object uid, fieldPath, type, reason, message, source). Recording
the same key again bumps ``count`` and ``lastTimestamp`` instead of adding a row: that is what
``(x5 over 71s)`` in ``describe`` is made from. The log is bounded (oldest first out) and written
behind to the state dir like the status store, so events survive a daemon restart.

Messages are cut to 1024 bytes, Kubernetes' NoteLengthLimit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from minikubelet.api.model import (
    Event,
    EventMeta,
    EventSource,
    EventType,
    ObjectReference,
    dump,
    now,
)
from minikubelet.status.store import write_atomically

log = logging.getLogger(__name__)

NOTE_LENGTH_LIMIT = 1024

_Key = tuple[str, str, str, str, str]


def _truncate(message: str) -> str:
    raw = message.encode()
    if len(raw) <= NOTE_LENGTH_LIMIT:
        return message
    return raw[: NOTE_LENGTH_LIMIT - 3].decode(errors="ignore") + "..."


def _last_seen(event: Event) -> datetime:
    stamp = event.last_timestamp or event.first_timestamp
    assert stamp is not None
    return stamp


class EventRecorder:
    def __init__(
        self,
        *,
        node_name: str,
        state_file: Path | None = None,
        limit: int = 5000,
        flush_interval: float = 0.5,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._node = node_name
        self._state_file = state_file
        self._limit = limit
        self._flush_interval = flush_interval
        self._clock = clock
        self._writing: asyncio.Task[None] | None = None  # the write in a thread, if any
        self._events: OrderedDict[_Key, Event] = OrderedDict()
        self._dirty = asyncio.Event()

    def record(
        self,
        obj: ObjectReference,
        *,
        type: EventType,
        reason: str,
        message: str,
        component: str = "kubelet",
    ) -> Event:
        message = _truncate(message)
        key: _Key = (obj.uid or obj.name or "", obj.field_path or "", type, reason, message)
        stamp = self._clock()
        old = self._events.pop(key, None)
        if old is not None:
            event = old.model_copy(update={"count": old.count + 1, "last_timestamp": stamp})
        else:
            event = Event(
                metadata=EventMeta(
                    name=f"{obj.name or 'node'}.{secrets.token_hex(8)}",
                    namespace=obj.namespace or "default",
                    creation_timestamp=stamp,
                ),
                involved_object=obj,
                reason=reason,
                message=message,
                type=type,
                first_timestamp=stamp,
                last_timestamp=stamp,
                source=EventSource(component=component, host=self._node),
                reporting_component=component,
                reporting_instance=self._node,
            )
        self._events[key] = event  # most recently touched last
        while len(self._events) > self._limit:
            self._events.popitem(last=False)
        log.log(
            logging.WARNING if type == "Warning" else logging.INFO,
            "event %s %s %s/%s %s: %s",
            type,
            reason,
            obj.namespace,
            obj.name,
            obj.field_path or "",
            message,
        )
        self._dirty.set()
        return event

    def events(self) -> list[Event]:
        """All events, oldest first by lastTimestamp."""
        return sorted(self._events.values(), key=_last_seen)

    def for_object(self, *, uid: str | None = None, name: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events()
            if (uid is not None and e.involved_object.uid == uid)
            or (uid is None and name is not None and e.involved_object.name == name)
        ]

    # --- persistence ----------------------------------------------------------------------------

    def load(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            raw = json.loads(self._state_file.read_bytes())
            for item in raw.get("events", []):
                event = Event.model_validate(item)
                obj = event.involved_object
                key: _Key = (
                    obj.uid or obj.name or "",
                    obj.field_path or "",
                    event.type,
                    event.reason,
                    event.message,
                )
                self._events[key] = event
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable events file %s: %s", self._state_file, exc)

    def _serialise(self) -> bytes:
        return json.dumps(
            {"events": [dump(e) for e in self._events.values()]}, separators=(",", ":")
        ).encode()

    async def run_flusher(self) -> None:
        try:
            while True:
                await self._dirty.wait()
                await asyncio.sleep(self._flush_interval)
                self._dirty.clear()
                if self._state_file is not None:
                    # Shielded, and awaited below: a thread cannot be cancelled, and two writers
                    # of one temp file race (StatusStore.flush).
                    self._writing = asyncio.ensure_future(
                        asyncio.to_thread(write_atomically, self._state_file, self._serialise())
                    )
                    await asyncio.shield(self._writing)
        finally:
            if self._writing is not None:
                await asyncio.wait([self._writing])
            if self._dirty.is_set() and self._state_file is not None:
                write_atomically(self._state_file, self._serialise())
