"""The manifests directory replaced whole, as fleet tools do it, against the real ManifestSource:
git-sync's symlink swap, a directory renamed over, a directory removed and created again, with
real inotify (source/manifests.py, source/pathwatch.py, source/pathwalk.py).

Every source here has a resync period far longer than the test's waits, so what the tests see
can only come from inotify. "Not yet" is checked with a sleep; "eventually" by waiting on the
published snapshots, with a timeout.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
from pathlib import Path

import pytest

from minikubelet.api.identity import CONFIG_FILE, DesiredSet
from minikubelet.source import pathwalk
from minikubelet.source.manifests import ManifestSource
from tests.integration.test_manifests import (
    NODE,
    Recorder,
    has_pod,
    make_source,
    pod_names,
    pod_yaml,
    running,
    the_pod,
    write,
)

LONG = 600.0  # resync period: never reached in these tests
SOON = 2.0  # seconds a change may take to be published; far below LONG


def swap_link(link: Path, target: str) -> None:
    """git-sync's swap: ``ln -s TARGET tmp && mv -T tmp LINK`` (one rename over the old link)."""
    tmp = link.with_name(f".{link.name}.swap")
    os.symlink(target, tmp)
    os.rename(tmp, link)


def exchange(a: Path, b: Path) -> None:
    """renameat2(RENAME_EXCHANGE): swap two directories atomically (``mv --exchange``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def revision(root: Path, name: str, pods: dict[str, str]) -> Path:
    """A complete directory of manifests (file name -> content), as a checkout would be."""
    d = root / name
    d.mkdir()
    for file, text in pods.items():
        write(d / file, text)
    return d


def images(desired: DesiredSet) -> dict[str, str | None]:
    return {sp.name: sp.pod.spec.containers[0].image for sp in desired.pods.values()}


async def no_new_snapshot(count: int, rec: Recorder, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert len(rec.sets) == count


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    return d


# --- symlink swaps ---------------------------------------------------------------------------


async def test_a_git_sync_swap_is_one_snapshot_seen_at_once_and_touches_only_what_changed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    root.mkdir()
    same, changed, removed = pod_yaml("same"), pod_yaml("changed"), pod_yaml("removed")
    revision(root, "rev1", {"same.yaml": same, "changed.yaml": changed, "removed.yaml": removed})
    current = root / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:
        before = rec.last
        assert pod_names(before) == {"same-node-1", "changed-node-1", "removed-node-1"}
        # Written just before the swap (ctimes far younger than the settle delay), as git-sync
        # does: the swap is taken whole, nothing waits to settle.
        revision(
            root,
            "rev2",
            {
                "same.yaml": same,
                "changed.yaml": pod_yaml("changed", image="alpine"),
                "added.yaml": pod_yaml("added"),
            },
        )
        count = len(rec.sets)
        swap_link(current, "rev2")
        after = await rec.wait_for(has_pod("added-node-1"), timeout=SOON)
        assert len(rec.sets) == count + 1  # one snapshot: no half-swapped state was published
        assert pod_names(after) == {"same-node-1", "changed-node-1", "added-node-1"}
        assert after.errors == {}
        # Unchanged bytes: the very same object (same UID, same config.seen), nothing to do.
        assert the_pod(after, "same-node-1") is the_pod(before, "same-node-1")
        assert the_pod(after, "changed-node-1").uid != the_pod(before, "changed-node-1").uid
        assert images(after)["changed-node-1"] == "alpine"
        # Named by the path as given, whatever the link leads to.
        assert the_pod(after, "added-node-1").source == str(current / "added.yaml")
        await no_new_snapshot(len(rec.sets), rec)

        # Rolling back is the same swap the other way: the old pods, with their old UIDs.
        swap_link(current, "rev1")
        back = await rec.wait_for(has_pod("removed-node-1"), timeout=SOON)
        assert {sp.uid for sp in back.pods.values()} == {sp.uid for sp in before.pods.values()}


async def test_a_manifest_renamed_by_a_swap_keeps_its_uid_and_names_its_new_file(
    tmp_path: Path,
) -> None:
    revision(tmp_path, "rev1", {"web.yaml": pod_yaml("web")})
    revision(tmp_path, "rev2", {"10-web.yaml": pod_yaml("web")})
    current = tmp_path / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:
        old = the_pod(rec.last, "web-node-1")
        count = len(rec.sets)
        swap_link(current, "rev2")
        moved = await rec.wait_for(
            lambda d: the_pod(d, "web-node-1").source.endswith("10-web.yaml"), timeout=SOON
        )
        assert len(rec.sets) == count + 1 and moved.errors == {}
        new = the_pod(moved, "web-node-1")
        assert new.uid == old.uid
        assert new.source == str(current / "10-web.yaml")
        assert new.metadata.annotations is not None
        assert new.metadata.annotations[CONFIG_FILE] == new.source


async def test_a_file_renamed_in_place_moves_its_pod_at_once_without_a_duplicate(
    mdir: Path,
) -> None:
    write(mdir / "web.yaml", pod_yaml("web"))
    # The wait is shorter than the settle delay: the old name's absence must not need settling.
    async with running(make_source(mdir, resync_period=LONG, settle_delay=1.2)) as rec:
        uid = the_pod(rec.last, "web-node-1").uid
        os.rename(mdir / "web.yaml", mdir / "app.yaml")
        moved = await rec.wait_for(
            lambda d: the_pod(d, "web-node-1").source == str(mdir / "app.yaml"), timeout=0.6
        )
        assert the_pod(moved, "web-node-1").uid == uid
        assert all(d.errors == {} for d in rec.sets)  # never reported as a duplicate


async def test_a_swap_of_a_symlinked_parent_is_seen_at_once(tmp_path: Path) -> None:
    for side, image in (("a", "busybox"), ("b", "alpine")):
        (tmp_path / side).mkdir()
        revision(tmp_path / side, "manifests", {"web.yaml": pod_yaml("web", image=image)})
    link = tmp_path / "etc"
    os.symlink(tmp_path / "a", link)
    async with running(make_source(link / "manifests", resync_period=LONG)) as rec:
        assert images(rec.last) == {"web-node-1": "busybox"}
        swap_link(link, str(tmp_path / "b"))
        after = await rec.wait_for(lambda d: images(d) == {"web-node-1": "alpine"}, timeout=SOON)
        assert the_pod(after, "web-node-1").source == str(link / "manifests" / "web.yaml")


async def test_a_swap_to_a_target_that_does_not_exist_keeps_the_pods(tmp_path: Path) -> None:
    revision(tmp_path, "rev1", {"web.yaml": pod_yaml("web")})
    current = tmp_path / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:
        sp = the_pod(rec.last, "web-node-1")
        swap_link(current, "rev9")
        gone = await rec.wait_for(lambda d: d.unavailable is not None, timeout=SOON)
        assert gone.unavailable == f"manifest directory {current} does not exist"
        assert the_pod(gone, "web-node-1") is sp
        # The target appearing later is a name in a watched directory: read at once.
        revision(tmp_path, "rev9", {"web.yaml": pod_yaml("web", image="alpine")})
        back = await rec.wait_for(lambda d: images(d) == {"web-node-1": "alpine"}, timeout=SOON)
        assert back.unavailable is None


async def test_rapid_swaps_never_publish_a_mix_of_two_revisions(tmp_path: Path) -> None:
    for rev, image in (("rev1", "one"), ("rev2", "two")):
        revision(
            tmp_path,
            rev,
            {f"{n}.yaml": pod_yaml(n, image=image) for n in ("a", "b", "c", "d")},
        )
    current = tmp_path / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:

        def swap_many() -> None:
            for i in range(300):
                swap_link(current, "rev2" if i % 2 == 0 else "rev1")

        await asyncio.to_thread(swap_many)  # ends on rev1
        await rec.wait_for(lambda d: set(images(d).values()) == {"one"}, timeout=SOON)
        await asyncio.sleep(0.3)
        assert len(rec.sets) > 1
        for desired in rec.sets:
            assert len(desired.pods) == 4 and len(set(images(desired).values())) == 1, images(
                desired
            )
        assert set(images(rec.last).values()) == {"one"}


# --- directories renamed over, removed, created again ------------------------------------------


async def test_a_directory_renamed_over_in_two_steps_is_seen_at_once(tmp_path: Path) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web"), "db.yaml": pod_yaml("db")})
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        sp = the_pod(rec.last, "db-node-1")
        new = revision(
            tmp_path,
            ".manifests.new",
            {"web.yaml": pod_yaml("web", image="alpine"), "db.yaml": pod_yaml("db")},
        )
        os.rename(mdir, tmp_path / ".manifests.old")
        os.rename(new, mdir)
        after = await rec.wait_for(lambda d: images(d).get("web-node-1") == "alpine", timeout=SOON)
        assert the_pod(after, "db-node-1").uid == sp.uid
        assert after.unavailable is None and after.errors == {}


async def test_a_directory_exchanged_atomically_is_one_snapshot(tmp_path: Path) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web"), "db.yaml": pod_yaml("db")})
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        db = the_pod(rec.last, "db-node-1")
        new = revision(
            tmp_path,
            ".staging",
            {"web.yaml": pod_yaml("web", image="alpine"), "db.yaml": pod_yaml("db")},
        )
        count = len(rec.sets)
        exchange(new, mdir)
        after = await rec.wait_for(lambda d: images(d).get("web-node-1") == "alpine", timeout=SOON)
        assert len(rec.sets) == count + 1
        assert the_pod(after, "db-node-1") is db


async def test_a_removed_directory_is_unavailable_not_empty_and_read_at_once_when_back(
    tmp_path: Path,
) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web"), "db.yaml": pod_yaml("db")})
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        before = rec.last
        shutil.rmtree(mdir)
        gone = await rec.wait_for(lambda d: d.unavailable is not None, timeout=SOON)
        assert gone.unavailable == f"manifest directory {mdir} does not exist"
        assert gone.pods == before.pods and gone.errors == {}
        await no_new_snapshot(len(rec.sets), rec)
        assert rec.last.pods == before.pods  # nothing settled into "absent"

        # Created again (as a tool would: filled elsewhere, renamed into place).
        new = revision(tmp_path, ".new", {"web.yaml": pod_yaml("web", image="alpine")})
        os.rename(new, mdir)
        back = await rec.wait_for(lambda d: d.unavailable is None, timeout=SOON)
        back = await rec.wait_for(lambda d: "db-node-1" not in pod_names(d), timeout=SOON)
        assert images(back) == {"web-node-1": "alpine"}


async def test_an_unavailable_directory_keeps_its_pods_across_resyncs(tmp_path: Path) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web")})
    async with running(make_source(mdir, resync_period=0.05)) as rec:
        before = rec.last.pods
        shutil.rmtree(mdir)
        await rec.wait_for(lambda d: d.unavailable is not None, timeout=SOON)
        await asyncio.sleep(0.5)  # ten full passes
        assert rec.last.pods == before and rec.last.unavailable is not None


async def test_a_directory_created_again_by_hand_is_read_at_once(tmp_path: Path) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web")})
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        sp = the_pod(rec.last, "web-node-1")
        shutil.rmtree(mdir)
        await rec.wait_for(lambda d: d.unavailable is not None, timeout=SOON)
        mdir.mkdir()
        write(mdir / "web.yaml", pod_yaml("web"))
        write(mdir / "db.yaml", pod_yaml("db"))
        back = await rec.wait_for(has_pod("db-node-1"), timeout=SOON)
        assert back.unavailable is None
        assert the_pod(back, "web-node-1").uid == sp.uid  # the same bytes: the same pod


async def test_removing_every_file_from_an_existing_directory_removes_every_pod(
    mdir: Path,
) -> None:
    write(mdir / "web.yaml", pod_yaml("web"))
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        (mdir / "web.yaml").unlink()
        empty = await rec.wait_for(lambda d: d.pods == {}, timeout=SOON)
        assert empty.unavailable is None


async def test_a_directory_created_after_start_is_read_at_once(tmp_path: Path) -> None:
    mdir = tmp_path / "later" / "manifests"
    async with running(make_source(mdir, resync_period=LONG)) as rec:
        assert rec.last.pods == {}
        assert rec.last.unavailable == f"manifest directory {mdir} does not exist"
        mdir.mkdir(parents=True)
        write(mdir / "web.yaml", pod_yaml("web"))
        desired = await rec.wait_for(has_pod("web-node-1"), timeout=SOON)
        assert desired.unavailable is None


def test_a_path_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    write(path, pod_yaml("web"))
    desired = make_source(path).scan_once()
    assert desired.pods == {} and desired.errors == {}
    assert desired.unavailable == f"manifest directory {path} is not a directory"


async def test_with_missing_is_empty_a_vanished_directory_stops_declaring_its_pods(
    tmp_path: Path,
) -> None:
    mdir = revision(tmp_path, "manifests", {"web.yaml": pod_yaml("web")})
    source = ManifestSource(mdir, node_name=NODE, resync_period=LONG, missing_is_empty=True)
    async with running(source) as rec:
        shutil.rmtree(mdir)
        empty = await rec.wait_for(lambda d: d.pods == {}, timeout=SOON)
        assert empty.unavailable == f"manifest directory {mdir} does not exist"


# --- trust and noise ---------------------------------------------------------------------------


async def test_a_swapped_in_directory_is_judged_before_anything_in_it_is_read(
    tmp_path: Path,
) -> None:
    revision(tmp_path, "rev1", {"web.yaml": pod_yaml("web")})
    rev2 = revision(tmp_path, "rev2", {"web.yaml": pod_yaml("web", image="alpine")})
    os.chmod(rev2, 0o777)
    current = tmp_path / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:
        swap_link(current, "rev2")
        refused = await rec.wait_for(lambda d: d.directory_error is not None, timeout=SOON)
        assert f"directory {rev2} is not trusted" in str(refused.directory_error)
        assert "Forbidden" in str(refused.errors[str(current / "web.yaml")])
        assert all(images(d).get("web-node-1") != "alpine" for d in rec.sets)
        os.chmod(rev2, 0o755)  # the watched directory's IN_ATTRIB: judged again at once
        await rec.wait_for(lambda d: images(d) == {"web-node-1": "alpine"}, timeout=SOON)


async def test_changes_to_other_names_on_the_way_publish_nothing(tmp_path: Path) -> None:
    revision(tmp_path, "rev1", {"web.yaml": pod_yaml("web")})
    current = tmp_path / "current"
    os.symlink("rev1", current)
    async with running(make_source(current, resync_period=LONG)) as rec:
        count = len(rec.sets)
        write(tmp_path / "other.yaml", pod_yaml("other"))  # beside the link, not in the target
        (tmp_path / "rev3").mkdir()
        os.symlink("rev3", tmp_path / "next")
        os.unlink(tmp_path / "other.yaml")
        await no_new_snapshot(count, rec)


def test_the_walk_records_the_links_parent_and_the_target_it_is_resolved_through(
    tmp_path: Path,
) -> None:
    (tmp_path / "rev1").mkdir()
    os.symlink("rev1", tmp_path / "current")
    walked = pathwalk.walk(str(tmp_path / "current"))
    assert walked.path == str(tmp_path / "rev1") and walked.error is None
    lookups = [(s.directory, s.name) for s in walked.steps if isinstance(s, pathwalk.Lookup)]
    assert lookups[-2:] == [(str(tmp_path), "current"), (str(tmp_path), "rev1")]
    links = [s.path for s in walked.steps if isinstance(s, pathwalk.Link)]
    assert links == [str(tmp_path / "current")]
    missing = pathwalk.walk(str(tmp_path / "nope" / "deeper"))
    assert missing.path is None and isinstance(missing.error, FileNotFoundError)
    last = missing.steps[-1]
    assert isinstance(last, pathwalk.Lookup)
    assert (last.directory, last.name) == (str(tmp_path), "nope")  # watched for "nope" to appear
