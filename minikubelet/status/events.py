"""The event log: kubelet's events, aggregated the way the API server's recorder does it.

An event is keyed by (involved object uid, fieldPath, type, reason, message, source). Recording
the same key again bumps ``count`` and ``lastTimestamp`` instead of adding a row: that is what
``(x5 over 71s)`` in ``describe`` is made from. The log is bounded (oldest first out) and written
behind to the state dir like the status store (``statefile.StateFile``), so events survive a
daemon restart. Trouble with that file (a failed write, an unreadable file set aside at start)
is recorded here too, as an event about the node.

Messages are cut to 1024 bytes, Kubernetes' NoteLengthLimit.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from minikubelet.api.model import (
    Event,
    EventMeta,
    EventSource,
    EventType,
    ObjectReference,
    dump,
    now,
)
from minikubelet.status.statefile import RETRY_MAX, StateFile

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
        retry_max: float = RETRY_MAX,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._node = node_name
        self._limit = limit
        self._clock = clock
        self._events: OrderedDict[_Key, Event] = OrderedDict()
        self.file = StateFile(
            state_file,
            what="events",
            serialise=self._serialise,
            flush_interval=flush_interval,
            retry_max=retry_max,
            report=self.node_event,
        )

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
        self.file.mark_dirty()
        return event

    def node_event(self, type: EventType, reason: str, message: str) -> None:
        """Record an event about the node itself (the daemon's own troubles)."""
        self.record(
            ObjectReference(kind="Node", name=self._node, uid=self._node, namespace=None),
            type=type,
            reason=reason,
            message=message,
        )

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
        """Take in what the previous daemon left. A file of the wrong shape is set aside, and
        that is recorded as the first event of this run."""
        for event in self.file.load(_parse_events) or []:
            obj = event.involved_object
            key: _Key = (
                obj.uid or obj.name or "",
                obj.field_path or "",
                event.type,
                event.reason,
                event.message,
            )
            self._events[key] = event
        while len(self._events) > self._limit:
            self._events.popitem(last=False)

    def _serialise(self) -> bytes:
        return json.dumps(
            {"events": [dump(e) for e in self._events.values()]}, separators=(",", ":")
        ).encode()

    async def run_flusher(self) -> None:
        """Write the log whenever it changed, at most once per flush_interval, retrying failed
        writes. Runs forever; flushes once more when cancelled."""
        await self.file.run()


def _parse_events(raw: Any) -> list[Event]:
    """events.json's contents; raises on anything but ``{"events": [Event, ...]}`` with
    timestamps."""
    if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
        raise ValueError('not an object with an "events" list')
    events = [Event.model_validate(item) for item in raw["events"]]
    for event in events:
        if event.last_timestamp is None and event.first_timestamp is None:
            raise ValueError(f"event {event.metadata.name} has no timestamp")
    return events
