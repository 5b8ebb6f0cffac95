"""The state files (status.json, events.json) on real filesystems: writes that fail (a full
tmpfs, a read-only remount) keep the previous file whole, are retried, reported and recover;
files of any shape are set aside at load and never stop anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minikubelet.api.model import ObjectReference, PodKey, PodStatus, PodView
from minikubelet.status.events import EventRecorder
from minikubelet.status.statefile import (
    SET_ASIDE,
    WRITE_FAILED,
    WRITE_RECOVERED,
    StateFile,
    write_atomically,
)
from minikubelet.status.store import PodEntry, StatusStore
from tests.filesystems import fill, free, remount, small_tmpfs

Reports = list[tuple[str, str, str]]


def entry(name: str, uid: str = "u1") -> PodEntry:
    return PodEntry(
        view=PodView(
            metadata={"name": name, "namespace": "default", "uid": uid},
            spec={"containers": [{"name": "app"}]},
            status=PodStatus(phase="Running"),
        ),
        runtime="process",
        source="/m/x.yaml",
    )


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# --- writing ----------------------------------------------------------------------------------


def test_write_atomically_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.root
def test_a_write_to_a_full_disk_keeps_the_old_file_whole_and_frees_its_temp_file(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "state", size="1m") as state:
        path = state / "status.json"
        write_atomically(path, b'{"pods":[]}')
        filler = fill(state)
        with pytest.raises(OSError, match="No space left"):
            write_atomically(path, b"x" * 200_000)
        assert path.read_bytes() == b'{"pods":[]}'
        assert sorted(p.name for p in state.iterdir()) == [".filler", "status.json"]
        free(filler)
        write_atomically(path, b"x" * 200_000)
        assert path.stat().st_size == 200_000


@pytest.mark.root
async def test_the_status_flusher_reports_a_full_disk_retries_and_recovers(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "state", size="1m") as state:
        reports: Reports = []
        store = StatusStore(
            state / "status.json",
            flush_interval=0.01,
            report=lambda *r: reports.append(r),
            retry_max=0.1,
        )
        store.put(PodKey("default/a"), entry("a"))
        flusher = asyncio.create_task(store.run_flusher(), name="status flusher")
        try:
            await until(lambda: (state / "status.json").exists())
            before = (state / "status.json").read_bytes()
            filler = fill(state)
            store.put(PodKey("default/b"), entry("b", uid="u2"))
            await until(lambda: store.file.failure is not None)
            name, ok, reason = store.file.health()
            assert (name, ok) == ("status-file", False)
            assert "No space left on device" in reason and str(state / "status.json") in reason
            assert [r[:2] for r in reports] == [("Warning", WRITE_FAILED)]
            await until(lambda: store.file.failures >= 3)  # retried...
            assert len(reports) == 1  # ...and said once
            assert (state / "status.json").read_bytes() == before  # nothing lost meanwhile
            free(filler)
            await until(lambda: store.file.failure is None)
            assert store.file.health() == ("status-file", True, "")
            assert reports[-1][:2] == ("Normal", WRITE_RECOVERED)
            names = [p["view"]["metadata"]["name"] for p in json.loads(before)["pods"]]
            assert names == ["a"]
            saved = json.loads((state / "status.json").read_bytes())["pods"]
            assert [p["view"]["metadata"]["name"] for p in saved] == ["a", "b"]
        finally:
            flusher.cancel()
            await asyncio.wait([flusher])


@pytest.mark.root
async def test_the_events_flusher_survives_a_read_only_remount_and_records_it(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "state") as state:
        events = EventRecorder(
            node_name="n1", state_file=state / "events.json", flush_interval=0.01, retry_max=0.1
        )
        flusher = asyncio.create_task(events.run_flusher(), name="events flusher")
        try:
            events.node_event("Normal", "Starting", "first")
            await until(lambda: (state / "events.json").exists())
            remount(state, "ro")
            events.node_event("Normal", "Starting", "second")
            await until(lambda: events.file.failure is not None)
            assert "Read-only file system" in events.file.health()[2]
            # The failure itself is an event (in memory, served by the API meanwhile).
            assert WRITE_FAILED in [e.reason for e in events.events()]
            remount(state, "rw")
            await until(lambda: events.file.failure is None)

            def saved_reasons() -> list[str]:
                saved = json.loads((state / "events.json").read_bytes())["events"]
                return [e["reason"] for e in saved]

            await until(lambda: WRITE_RECOVERED in saved_reasons())
            assert WRITE_FAILED in saved_reasons()
        finally:
            flusher.cancel()
            await asyncio.wait([flusher])


async def test_a_flusher_cancelled_while_writes_fail_ends_without_raising(
    tmp_path: Path,
) -> None:
    # A state "file" that is a directory cannot be replaced by a file: every write fails.
    (tmp_path / "status.json").mkdir()
    (tmp_path / "status.json" / "x").write_text("keep me busy")
    store = StatusStore(tmp_path / "status.json", flush_interval=0.01)
    store.put(PodKey("default/a"), entry("a"))
    flusher = asyncio.create_task(store.run_flusher(), name="status flusher")
    await until(lambda: store.file.failure is not None)
    flusher.cancel()
    await asyncio.wait([flusher])
    assert flusher.cancelled()  # the final write failed too, and was logged, not raised


# --- reading ----------------------------------------------------------------------------------

WRONG_SHAPES = {
    "empty list": "[]",
    "null": "null",
    "a number": "42",
    "pods not a list": '{"pods": {"a": 1}}',
    "an entry without its view": '{"pods": [{"runtime": "process", "source": "x"}]}',
    "an entry that is a string": '{"pods": ["a"]}',
    "an unnamed pod": (
        '{"pods": [{"view": {"metadata": {}, "spec": {}, "status": {}}, '
        '"runtime": "process", "source": "x"}]}'
    ),
    "deep nesting (RecursionError)": "[" * 100_000 + "]" * 100_000,
    "deep nesting (parsable)": '{"pods": ' + "[" * 500 + "]" * 500 + "}",
    "garbage": "\x00\xff not json",
    "truncated": '{"pods": [{"view": ',
}


@pytest.mark.parametrize("content", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_a_status_file_of_the_wrong_shape_is_set_aside_and_reported(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "status.json"
    path.write_text(content)
    reports: Reports = []
    store = StatusStore(path, report=lambda *r: reports.append(r))
    assert store.load() == []
    assert not path.exists()
    [aside] = list(tmp_path.glob("status.json.corrupt-*"))
    assert aside.read_text() == content  # kept as it was, for a human to look at
    [(type_, reason, message)] = reports
    assert (type_, reason) == ("Warning", SET_ASIDE)
    assert aside.name in message and "starting without the saved status" in message


@pytest.mark.parametrize("content", ["[]", "null", '{"events": [{"reason": "x"}]}'])
def test_an_events_file_of_the_wrong_shape_is_set_aside_and_that_is_the_first_event(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "events.json"
    path.write_text(content)
    events = EventRecorder(node_name="n1", state_file=path)
    events.load()
    assert [(e.type, e.reason, e.involved_object.kind) for e in events.events()] == [
        ("Warning", SET_ASIDE, "Node")
    ]
    assert len(list(tmp_path.glob("events.json.corrupt-*"))) == 1


def test_an_event_without_timestamps_is_a_wrong_shape(tmp_path: Path) -> None:
    recorder = EventRecorder(node_name="n1")
    event = recorder.record(
        ObjectReference(kind="Pod", name="a", namespace="default", uid="u"),
        type="Normal",
        reason="Started",
        message="hi",
    )
    raw = json.loads(event.model_dump_json(by_alias=True, exclude_none=True))
    del raw["firstTimestamp"], raw["lastTimestamp"]
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [raw]}))
    events = EventRecorder(node_name="n1", state_file=path)
    events.load()
    assert [e.reason for e in events.events()] == [SET_ASIDE]


def test_a_good_status_file_loads_and_a_second_bad_one_gets_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomically(path, StatusStore(None)._serialise([entry("a")]))
    assert [e.view.metadata["name"] for e in StatusStore(path).load()] == ["a"]
    for _ in range(2):
        path.write_text("[]")
        StatusStore(path).load()
    assert len(list(tmp_path.glob("status.json.corrupt-*"))) == 2


def test_a_state_file_that_cannot_be_read_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.mkdir()  # reading fails (IsADirectoryError)
    reports: Reports = []
    file = StateFile(
        path, what="status", serialise=lambda: b"", report=lambda *r: reports.append(r)
    )
    assert file.load(lambda raw: raw) is None
    assert reports and reports[0][1] == SET_ASIDE
