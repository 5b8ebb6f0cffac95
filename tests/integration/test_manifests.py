"""ManifestSource against real files in tmp_path and real inotify; nothing mocked.

Timings are shrunk through the constructor (settle_delay, resync_period) so that each test stays
well under ~3 s; assertions about "not yet" use a wait shorter than the settle delay by a wide
margin, and assertions about "eventually" wait on published snapshots with a timeout. Leftover
tasks (the inotify reader, a refresh pass still in its thread) are caught by the autouse guard
in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from minikubelet.api.errors import ManifestError
from minikubelet.api.identity import (
    CONFIG_FILE,
    CONFIG_HASH,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    DesiredSet,
    StaticPod,
)
from minikubelet.source.manifests import (
    LARGE_FILE_BYTES,
    ManifestSource,
    is_manifest_name,
    load_manifest,
    static_pod_uid,
)

NODE = "Node-1"


def pod_yaml(name: str, *, image: str = "busybox", extra_labels: str = "") -> str:
    return (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels:\n"
        f"    app: {name}\n"
        f"{extra_labels}"
        "spec:\n"
        "  containers:\n"
        "  - name: main\n"
        f"    image: {image}\n"
        "    command: [sleep, '30']\n"
    )


def write(path: Path, text: str) -> None:
    path.write_text(text)


@contextlib.contextmanager
def open_for_writing(path: Path) -> Iterator[int]:
    """An unbuffered descriptor, truncating in place: each os.write is one IN_MODIFY."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)


class Recorder:
    """The publish callback: keeps every snapshot and lets a test wait for one."""

    def __init__(self) -> None:
        self.sets: list[DesiredSet] = []
        self._changed = asyncio.Event()

    def __call__(self, desired: DesiredSet) -> None:
        self.sets.append(desired)
        self._changed.set()

    @property
    def last(self) -> DesiredSet:
        return self.sets[-1]

    async def wait_for(
        self, predicate: Callable[[DesiredSet], bool], timeout: float = 2.0
    ) -> DesiredSet:
        async with asyncio.timeout(timeout):
            while True:
                if self.sets and predicate(self.sets[-1]):
                    return self.sets[-1]
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(source: ManifestSource) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    task = asyncio.create_task(source.run(recorder), name="manifest source")
    try:
        await recorder.wait_for(lambda _: True)
        yield recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pod_names(desired: DesiredSet) -> set[str]:
    return {sp.name for sp in desired.pods.values()}


def has_pod(name: str) -> Callable[[DesiredSet], bool]:
    return lambda d: name in pod_names(d)


def lacks_pod(name: str) -> Callable[[DesiredSet], bool]:
    return lambda d: name not in pod_names(d)


def the_pod(desired: DesiredSet, name: str) -> StaticPod:
    (sp,) = [sp for sp in desired.pods.values() if sp.name == name]
    return sp


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    return d


def make_source(directory: Path, **kw: float) -> ManifestSource:
    kw.setdefault("resync_period", 20.0)
    kw.setdefault("settle_delay", 0.05)
    return ManifestSource(directory, node_name=NODE, **kw)  # type: ignore[arg-type]


# --- identity and one-shot loading ---------------------------------------------------------------


def test_static_pod_gets_kubelet_identity(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    desired = make_source(mdir).scan_once()

    assert desired.errors == {}
    (sp,) = desired.pods.values()
    assert sp.key == "default/web-node-1"
    assert sp.name == "web-node-1"
    assert sp.namespace == "default"
    assert re.fullmatch(r"[0-9a-f]{32}", sp.uid)
    assert sp.uid == static_pod_uid(path.read_bytes(), node_name=NODE)
    assert sp.source == str(path)
    meta = sp.metadata
    assert meta.uid == sp.uid
    assert meta.labels == {"app": "web"}
    assert meta.annotations is not None
    assert meta.annotations[CONFIG_SOURCE] == "file"
    assert meta.annotations[CONFIG_HASH] == sp.uid
    assert meta.annotations[CONFIG_FILE] == str(path)
    seen = meta.annotations[CONFIG_SEEN]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", seen)
    assert meta.creation_timestamp is not None
    assert seen.startswith(meta.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%S"))
    assert sp.pod.spec.node_name == NODE
    assert sp.pod.metadata.name == "web"  # the decoded pod keeps the manifest's own name


def test_namespace_from_manifest_is_kept(mdir: Path) -> None:
    write(
        mdir / "web.yaml",
        pod_yaml("web").replace("  name: web\n", "  name: web\n  namespace: ops\n"),
    )
    desired = make_source(mdir).scan_once()
    assert list(desired.pods) == ["ops/web-node-1"]


def test_uid_depends_on_content_and_node_not_on_the_files_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "elsewhere" / "b.yaml"
    b.parent.mkdir()
    write(a, pod_yaml("web"))
    write(b, pod_yaml("web"))
    uid_a = load_manifest(a, node_name=NODE).uid
    assert load_manifest(a, node_name=NODE).uid == uid_a
    assert load_manifest(b, node_name=NODE).uid == uid_a  # moved, not changed: the same pod
    assert load_manifest(a, node_name="other").uid != uid_a
    write(a, pod_yaml("web", image="alpine"))
    assert load_manifest(a, node_name=NODE).uid != uid_a
    write(a, pod_yaml("web") + "# a comment\n")
    assert load_manifest(a, node_name=NODE).uid != uid_a  # any edit is a new pod


def test_load_manifest_raises_manifest_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    write(path, pod_yaml("a") + "---\n" + pod_yaml("b"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path, node_name=NODE)
    assert info.value.source == str(path)
    assert all(line.startswith(f"{path}: ") for line in info.value.lines())

    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "missing.yaml", node_name=NODE)


def test_manifest_names() -> None:
    for name in ("web.yaml", "web.yml", "web.json", "WEB.YAML"):
        assert is_manifest_name(name), name
    for name in (
        ".web.yaml",
        ".web.yaml.swp",
        "web.yaml~",
        "web.yaml.bak",
        "web.yaml.orig",
        "web.yaml.dpkg-new",
        "web.yaml.dpkg-old",
        "web.yaml.rpmnew",
        "web.yaml.rpmsave",
        "web.yaml.tmp",
        "#web.yaml#",
        "web.txt",
        "web",
    ):
        assert not is_manifest_name(name), name


# --- what the directory scan accepts -------------------------------------------------------------


def test_swap_backup_and_dot_files_are_ignored_without_errors(mdir: Path) -> None:
    write(mdir / "good.yaml", pod_yaml("good"))
    for i, name in enumerate(
        [
            "good.yaml~",
            ".good.yaml.swp",
            "good.yaml.bak",
            "good.yaml.orig",
            "good.yaml.dpkg-new",
            "good.yaml.dpkg-dist",
            "good.yaml.rpmnew",
            "good.yaml.rpmsave",
            ".hidden.yaml",
            "notes.txt",
        ]
    ):
        write(mdir / name, pod_yaml(f"leftover{i}"))
    write(mdir / ".broken.yaml", "{{{ not yaml")
    desired = make_source(mdir).scan_once()
    assert pod_names(desired) == {"good-node-1"}
    assert desired.errors == {}


def test_subdirectories_are_not_recursed(mdir: Path) -> None:
    (mdir / "sub").mkdir()
    write(mdir / "sub" / "inner.yaml", pod_yaml("inner"))
    (mdir / "dir.yaml").mkdir()
    write(mdir / "dir.yaml" / "x.yaml", pod_yaml("x"))
    desired = make_source(mdir).scan_once()
    assert desired.pods == {}
    assert desired.errors == {}


def test_oversized_file_is_an_error_naming_file_and_limit(mdir: Path) -> None:
    big = mdir / "big.yaml"
    write(big, pod_yaml("big") + "# " + "x" * 2000 + "\n")
    write(mdir / "small.yaml", pod_yaml("small"))
    desired = make_source(mdir, max_bytes=1024).scan_once()
    assert pod_names(desired) == {"small-node-1"}
    message = str(desired.errors[str(big)])
    assert message.startswith(f"{big}: ")
    assert "1024" in message


def test_two_documents_or_another_kind_is_an_error_and_others_still_run(mdir: Path) -> None:
    two = mdir / "two.yaml"
    write(two, pod_yaml("a") + "---\n" + pod_yaml("b"))
    deploy = mdir / "deploy.yaml"
    write(deploy, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec: {}\n")
    garbage = mdir / "garbage.json"
    write(garbage, "{not json")
    write(mdir / "ok.yaml", pod_yaml("ok"))
    desired = make_source(mdir).scan_once()
    assert pod_names(desired) == {"ok-node-1"}
    assert set(desired.errors) == {str(two), str(deploy), str(garbage)}
    for path, error in desired.errors.items():
        assert error.source == path
        assert all(line.startswith(f"{path}: ") for line in error.lines())


def test_duplicate_name_on_fresh_start_rejects_the_later_path_naming_both(mdir: Path) -> None:
    a, b = mdir / "a.yaml", mdir / "b.yaml"
    write(b, pod_yaml("web", image="alpine"))
    write(a, pod_yaml("web"))
    desired = make_source(mdir).scan_once()
    assert the_pod(desired, "web-node-1").source == str(a)
    assert list(desired.errors) == [str(b)]
    assert str(desired.errors[str(b)]) == (
        f'{b}: metadata.name: Duplicate value: "web": already declared by {a}'
    )


async def test_duplicate_name_keeps_the_pod_already_accepted(mdir: Path) -> None:
    a, b = mdir / "a.yaml", mdir / "b.yaml"
    write(b, pod_yaml("web"))
    async with running(make_source(mdir)) as rec:
        assert the_pod(rec.last, "web-node-1").source == str(b)
        write(a, pod_yaml("web", image="alpine"))
        desired = await rec.wait_for(lambda d: str(a) in d.errors)
        assert the_pod(desired, "web-node-1").source == str(b)
        assert f"already declared by {b}" in str(desired.errors[str(a)])
        assert str(desired.errors[str(a)]).startswith(f"{a}: metadata.name: Duplicate value")

        # The holder goes away: the other file takes the name over.
        b.unlink()
        desired = await rec.wait_for(lambda d: not d.errors and has_pod("web-node-1")(d))
        assert the_pod(desired, "web-node-1").source == str(a)


# --- the running source: inotify, settling, resync ----------------------------------------------


async def test_run_publishes_once_when_empty_and_then_only_on_change(mdir: Path) -> None:
    async with running(make_source(mdir, resync_period=0.05)) as rec:
        await asyncio.sleep(0.3)  # several resyncs
        assert len(rec.sets) == 1
        assert rec.last.pods == {} and rec.last.errors == {}


async def test_add_modify_remove(mdir: Path) -> None:
    path = mdir / "web.yaml"
    source = make_source(mdir)
    async with running(source) as rec:
        write(path, pod_yaml("web"))
        first = the_pod(await rec.wait_for(has_pod("web-node-1")), "web-node-1")

        write(path, pod_yaml("web", image="alpine"))
        changed = await rec.wait_for(
            lambda d: has_pod("web-node-1")(d) and the_pod(d, "web-node-1").uid != first.uid
        )
        assert the_pod(changed, "web-node-1").pod.spec.containers[0].image == "alpine"
        assert source.snapshot() is rec.last

        path.unlink()
        await rec.wait_for(lambda d: d.pods == {} and d.errors == {})


async def test_a_large_file_settling_with_small_ones_waits_for_their_snapshot(mdir: Path) -> None:
    # Both files are written in place and left open, so they settle in the same pass.
    big = pod_yaml("big").replace(
        "  labels:\n", f"  annotations:\n    pad: {'x' * LARGE_FILE_BYTES}\n  labels:\n"
    )
    async with running(make_source(mdir, settle_delay=0.2)) as rec:
        with (
            open_for_writing(mdir / "a-big.yaml") as big_fd,
            open_for_writing(mdir / "b-small.yaml") as small_fd,
        ):
            os.write(big_fd, big.encode())
            os.write(small_fd, pod_yaml("small").encode())
            await rec.wait_for(has_pod("big-node-1"))
    first_small = next(i for i, d in enumerate(rec.sets) if has_pod("small-node-1")(d))
    # The small pod was published on its own first; the large one came with the next pass.
    assert lacks_pod("big-node-1")(rec.sets[first_small])
    assert has_pod("small-node-1")(rec.last)


async def test_same_content_keeps_uid_and_object_across_touch_and_resync(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    async with running(make_source(mdir, resync_period=0.1)) as rec:
        sp = the_pod(rec.last, "web-node-1")
        os.utime(path)  # new mtime, same bytes
        write(path, pod_yaml("web"))  # rewritten in place with the same bytes
        await asyncio.sleep(0.4)
        assert len(rec.sets) == 1
        assert the_pod(rec.last, "web-node-1") is sp


async def test_rename_over_write_replaces_the_pod_without_a_gap(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    async with running(make_source(mdir)) as rec:
        old_uid = the_pod(rec.last, "web-node-1").uid
        tmp = mdir / "web.yaml.tmp"
        write(tmp, pod_yaml("web", image="alpine"))
        os.replace(tmp, path)
        await rec.wait_for(lambda d: the_pod(d, "web-node-1").uid != old_uid, timeout=1.0)
        assert all(has_pod("web-node-1")(d) and not d.errors for d in rec.sets)
        assert len(rec.sets) == 2


async def test_slow_in_place_write_never_publishes_the_half_as_a_pod(mdir: Path) -> None:
    path = mdir / "web.yaml"
    text = pod_yaml("web")
    async with running(make_source(mdir, settle_delay=0.1)) as rec:
        with open_for_writing(path) as fd:
            os.write(fd, text[: len(text) // 2].encode())
            await asyncio.sleep(0.3)  # longer than the settle delay
            os.write(fd, text[len(text) // 2 :].encode())
        desired = await rec.wait_for(has_pod("web-node-1"))
        assert not desired.errors
        uid = static_pod_uid(text.encode(), node_name=NODE)
        published = [sp.uid for d in rec.sets for sp in d.pods.values()]
        assert set(published) == {uid}


async def test_valid_half_written_without_close_waits_for_the_settle_delay(mdir: Path) -> None:
    path = mdir / "web.yaml"
    half = pod_yaml("web")
    rest = "  restartPolicy: Never\n"
    async with running(make_source(mdir, settle_delay=0.6)) as rec:
        with open_for_writing(path) as fd:
            os.write(fd, half.encode())  # a complete, valid pod on its own
            await asyncio.sleep(0.2)  # well inside the settle delay
            assert len(rec.sets) == 1 and rec.last.pods == {}
            os.write(fd, rest.encode())
        desired = await rec.wait_for(has_pod("web-node-1"))
        assert the_pod(desired, "web-node-1").pod.spec.restart_policy == "Never"
        assert all(
            sp.pod.spec.restart_policy == "Never" for d in rec.sets for sp in d.pods.values()
        )


async def test_good_file_turning_invalid_removes_the_pod_only_after_settling(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    async with running(make_source(mdir, settle_delay=0.5)) as rec:
        assert has_pod("web-node-1")(rec.last)
        with open_for_writing(path) as fd:  # truncates in place: same inode
            os.write(fd, b"apiVersion: v1\nkind: Pod\nmetadata:\n  na")  # mid-write, not closed
            await asyncio.sleep(0.2)
            assert len(rec.sets) == 1  # the running pod does not flap
            await rec.wait_for(lambda d: str(path) in d.errors and d.pods == {}, timeout=1.5)


async def test_swap_files_written_while_running_publish_nothing(mdir: Path) -> None:
    async with running(make_source(mdir)) as rec:
        write(mdir / ".web.yaml.swp", "binary junk \x00")
        write(mdir / "web.yaml~", pod_yaml("backup"))
        write(mdir / "web.yaml.dpkg-new", pod_yaml("pkg"))
        (mdir / "sub").mkdir()
        write(mdir / "sub" / "x.yaml", pod_yaml("x"))
        await asyncio.sleep(0.3)
        assert len(rec.sets) == 1


async def test_resync_picks_up_a_directory_created_after_start(tmp_path: Path) -> None:
    mdir = tmp_path / "later"
    async with running(make_source(mdir, resync_period=0.2)) as rec:
        assert rec.last.pods == {} and rec.last.errors == {}
        mdir.mkdir()
        write(mdir / "web.yaml", pod_yaml("web"))
        await rec.wait_for(has_pod("web-node-1"))
        # From now on inotify watches it: a new file shows up well before a resync would.
        start = time.monotonic()
        write(mdir / "db.yaml", pod_yaml("db"))
        await rec.wait_for(has_pod("db-node-1"))
        assert time.monotonic() - start < 0.2


async def test_resync_picks_up_a_change_inotify_cannot_see(tmp_path: Path) -> None:
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    outside = tmp_path / "elsewhere.yaml"
    write(outside, pod_yaml("web"))
    (mdir / "web.yaml").symlink_to(outside)
    async with running(make_source(mdir, resync_period=0.2)) as rec:
        old_uid = the_pod(rec.last, "web-node-1").uid
        write(outside, pod_yaml("web", image="alpine"))  # not an event in the watched directory
        desired = await rec.wait_for(lambda d: the_pod(d, "web-node-1").uid != old_uid)
        assert the_pod(desired, "web-node-1").pod.spec.containers[0].image == "alpine"


async def test_with_missing_is_empty_a_removed_directory_empties_the_set_and_comes_back(
    tmp_path: Path,
) -> None:
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    write(mdir / "web.yaml", pod_yaml("web"))
    source = ManifestSource(mdir, node_name=NODE, resync_period=20, missing_is_empty=True)
    async with running(source) as rec:
        assert has_pod("web-node-1")(rec.last)
        (mdir / "web.yaml").unlink()
        mdir.rmdir()
        gone = await rec.wait_for(lambda d: d.pods == {})
        assert gone.unavailable == f"manifest directory {mdir} does not exist"
        mdir.mkdir()
        write(mdir / "web.yaml", pod_yaml("web"))
        back = await rec.wait_for(has_pod("web-node-1"))
        assert back.unavailable is None


async def test_a_bad_file_never_stops_the_others(mdir: Path) -> None:
    async with running(make_source(mdir)) as rec:
        write(mdir / "bad.yaml", "kind: Pod\nspec: [")
        write(mdir / "good.yaml", pod_yaml("good"))
        desired = await rec.wait_for(lambda d: has_pod("good-node-1")(d) and len(d.errors) == 1)
        assert list(desired.errors) == [str(mdir / "bad.yaml")]
        write(mdir / "bad.yaml", pod_yaml("fixed"))
        await rec.wait_for(lambda d: has_pod("fixed-node-1")(d) and not d.errors)


async def test_editor_save_by_rename_away_and_rewrite_does_not_flap(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    async with running(make_source(mdir, settle_delay=0.2)) as rec:
        sp = the_pod(rec.last, "web-node-1")
        os.rename(path, mdir / "web.yaml~")  # vim's backup, then a fresh file with the buffer
        write(path, pod_yaml("web"))
        await asyncio.sleep(0.5)
        assert len(rec.sets) == 1
        assert the_pod(rec.last, "web-node-1") is sp


def test_json_manifest_is_read(mdir: Path) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "api"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]},
    }
    write(mdir / "api.json", json.dumps(doc))
    desired = make_source(mdir).scan_once()
    assert pod_names(desired) == {"api-node-1"}


def test_name_too_long_once_the_node_name_is_appended_is_an_error(mdir: Path) -> None:
    path = mdir / "long.yaml"
    write(path, pod_yaml("a" * 250).replace(f"    app: {'a' * 250}\n", "    app: long\n"))
    desired = make_source(mdir).scan_once()
    assert desired.pods == {}
    assert str(desired.errors[str(path)]).startswith(f"{path}: metadata.name: Too long: ")
