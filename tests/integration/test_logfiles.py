"""LiveLog against real files: rotation while something appends, the copytruncate fallback, and
followers across rotations. The writer here is a thread appending through its own O_APPEND fd,
as a container does through its stdout."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from minikubelet.aiotasks import TaskSet
from minikubelet.runtime import logfiles

pytestmark = pytest.mark.timeout(60)


def collapse_supported(directory: Path) -> bool:
    probe = directory / ".collapse-probe"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, b"x" * 3 * 4096)
        try:
            logfiles._collapse(fd, 4096)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)
        os.unlink(probe)


class Appender(threading.Thread):
    """Appends numbered 100-byte lines, in bursts, until stopped."""

    def __init__(self, path: Path, lines: int) -> None:
        super().__init__(daemon=True)
        self.fd = logfiles.open_for_container(path)
        self.lines = lines
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for i in range(self.lines):
                os.write(self.fd, b"%099d\n" % i)
                if i % 50 == 49:
                    time.sleep(0.002)
        finally:
            os.close(self.fd)
            self.done.set()


def everything(lines: int) -> bytes:
    return b"".join(b"%099d\n" % i for i in range(lines))


async def rotate_while_appending(path: Path, *, lines: int, max_files: int) -> logfiles.LiveLog:
    tasks = TaskSet(logfiles.log)
    watcher = logfiles.LogWatcher(tasks)
    watcher.start()
    os.close(logfiles.open_for_container(path))
    live = logfiles.LiveLog(path, max_bytes=8192, max_files=max_files, tasks=tasks)
    watcher.add(live)
    appender = Appender(path, lines)
    appender.start()
    try:
        async with asyncio.timeout(30):
            while not appender.done.is_set():
                await asyncio.sleep(0.01)
            live.finish()
            while any(not t.done() for t in tasks if t.get_name().startswith("rotate")):
                await asyncio.sleep(0.01)
    finally:
        watcher.remove(live)
        await tasks.close()
    return live


async def test_rotating_while_appending_loses_and_repeats_nothing(tmp_path: Path) -> None:
    if not collapse_supported(tmp_path):
        pytest.skip(f"{tmp_path} cannot collapse ranges (ext4 and xfs can)")
    path = tmp_path / "0.log"
    live = await rotate_while_appending(path, lines=5000, max_files=1000)
    files = logfiles.rotations(path)
    assert len(files) > 10  # it rotated, many times
    assert b"".join(p.read_bytes() for p in files) == everything(5000)
    live.close()


async def test_what_is_kept_is_the_end_of_the_log_in_max_files(tmp_path: Path) -> None:
    if not collapse_supported(tmp_path):
        pytest.skip(f"{tmp_path} cannot collapse ranges (ext4 and xfs can)")
    path = tmp_path / "0.log"
    live = await rotate_while_appending(path, lines=3000, max_files=3)
    files = logfiles.rotations(path)
    assert [p.name for p in files] == ["0.log.2", "0.log.1", "0.log"]
    kept = b"".join(p.read_bytes() for p in files)
    assert everything(3000).endswith(kept)
    live.close()


def _no_collapse_dir() -> Path | None:
    shm = Path("/dev/shm")
    return shm if os.path.isdir(shm) and not collapse_supported(shm) else None


async def test_without_collapse_it_rotates_by_copy_and_truncate() -> None:
    shm = _no_collapse_dir()
    if shm is None:
        pytest.skip("needs a tmpfs at /dev/shm (which cannot collapse ranges)")
    directory = shm / f"mkl-logs-{os.getpid()}"
    os.mkdir(directory)
    try:
        path = directory / "0.log"
        live = await rotate_while_appending(path, lines=2000, max_files=3)
        files = logfiles.rotations(path)
        assert [p.name for p in files] == ["0.log.2", "0.log.1", "0.log"]
        assert all(p.stat().st_size < 8192 * 4 for p in files)  # bounded
        live.close()
    finally:
        for name in os.listdir(directory):
            os.unlink(directory / name)
        os.rmdir(directory)


async def test_a_follower_reads_across_rotations_from_the_first_byte_kept(tmp_path: Path) -> None:
    if not collapse_supported(tmp_path):
        pytest.skip(f"{tmp_path} cannot collapse ranges (ext4 and xfs can)")
    path = tmp_path / "0.log"
    os.close(logfiles.open_for_container(path))
    tasks = TaskSet(logfiles.log)
    watcher = logfiles.LogWatcher(tasks)
    watcher.start()
    live = logfiles.LiveLog(path, max_bytes=8192, max_files=1000, tasks=tasks)
    watcher.add(live)
    got = bytearray()

    async def follow() -> None:
        async for chunk in logfiles.read_log(path, live=live, tail_lines=None, follow=True):
            got.extend(chunk)
            await asyncio.sleep(0.001)  # slower than the writer: it falls behind the rotations

    follower = asyncio.create_task(follow())
    appender = Appender(path, 4000)
    appender.start()
    try:
        async with asyncio.timeout(30):
            while not appender.done.is_set():
                await asyncio.sleep(0.01)
            live.finish()
            await follower
        assert bytes(got) == everything(4000)
        assert len(logfiles.rotations(path)) > 5
    finally:
        follower.cancel()
        watcher.remove(live)
        live.close()
        await tasks.close()
