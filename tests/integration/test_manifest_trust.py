"""The trust rules on real files: check_path's walk, and the ManifestSource refusing, re-judging
and accepting again, with real chmod, chown and symlinks (source/trust.py, source/manifests.py).

pytest's tmp_path is under /tmp (sticky, root's) in directories of the test user's with mode
0700, so it passes the rules; each test loosens what it is about. Tests that hand a file to
another user need root (they skip with the reason otherwise; CI runs as root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minikubelet.api.errors import ManifestError
from minikubelet.source.manifests import ManifestSource, load_manifest
from minikubelet.source.trust import check_path, refusal, trusted_owners
from tests.integration.test_manifests import (
    NODE,
    has_pod,
    lacks_pod,
    make_source,
    pod_yaml,
    running,
    the_pod,
    write,
)

NOBODY = 65534
OWNERS = trusted_owners()


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    return d


def problem_paths(path: Path) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in check_path(str(path), owners=OWNERS)]


# --- the walk -----------------------------------------------------------------------------------


def test_a_file_in_pytests_tmp_dir_passes_every_rule_up_to_the_root(mdir: Path) -> None:
    write(mdir / "web.yaml", pod_yaml("web"))
    assert problem_paths(mdir / "web.yaml") == []
    assert problem_paths(mdir) == []


def test_every_failing_directory_on_the_way_and_the_file_are_reported_parents_first(
    tmp_path: Path,
) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    path = inner / "web.yaml"
    write(path, pod_yaml("web"))
    outer.chmod(0o777)
    inner.chmod(0o775)
    path.chmod(0o666)
    assert problem_paths(path) == [
        (str(outer), "directory"),
        (str(inner), "directory"),
        (str(path), "file"),
    ]


def test_a_sticky_world_writable_directory_passes_only_when_roots(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    expected = [] if os.geteuid() == 0 else [(str(shared), "directory")]
    assert problem_paths(shared) == expected


def test_a_symlinked_file_is_judged_where_it_leads_and_through_every_directory_on_the_way(
    tmp_path: Path, mdir: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "web.yaml"
    write(target, pod_yaml("web"))
    link = mdir / "web.yaml"
    link.symlink_to("../elsewhere/web.yaml")  # relative, through ".."
    assert problem_paths(link) == []

    elsewhere.chmod(0o777)  # anyone could swap the target
    assert problem_paths(link) == [(str(elsewhere), "directory")]
    elsewhere.chmod(0o755)
    target.chmod(0o664)
    assert problem_paths(link) == [(str(target), "file")]


def test_a_symlinked_directory_is_judged_on_both_sides(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "manifests").symlink_to(real)
    assert problem_paths(hub / "manifests") == []
    hub.chmod(0o777)  # anyone could point the link elsewhere
    assert problem_paths(hub / "manifests") == [(str(hub), "directory")]
    hub.chmod(0o755)
    real.chmod(0o777)
    assert problem_paths(hub / "manifests") == [(str(real), "directory")]


def test_a_symlink_someone_else_left_is_refused_wherever_it_leads(
    require_root: None, tmp_path: Path, mdir: Path
) -> None:
    target = tmp_path / "roots.yaml"
    write(target, pod_yaml("web"))
    link = mdir / "web.yaml"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    assert problem_paths(link) == [(str(link), "symlink")]


def test_what_cannot_be_walked_is_left_to_the_reader(tmp_path: Path) -> None:
    assert problem_paths(tmp_path / "absent" / "web.yaml") == []
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    assert problem_paths(tmp_path / "loop.yaml") == []
    write(tmp_path / "file", "x")
    assert problem_paths(tmp_path / "file" / "web.yaml") == []


def test_a_missing_directory_under_a_world_writable_one_is_reported(tmp_path: Path) -> None:
    """Anyone could create it."""
    tmp_path.chmod(0o777)
    try:
        assert problem_paths(tmp_path / "manifests") == [(str(tmp_path), "directory")]
    finally:
        tmp_path.chmod(0o700)


# --- one-shot loading (validate) ------------------------------------------------------------------


def test_load_manifest_refuses_an_untrusted_file_without_parsing_it(mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, "not: [valid")
    path.chmod(0o666)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, node_name=NODE)
    (line,) = caught.value.lines()
    assert line.startswith(f"{path}: Forbidden: file {path} is not trusted (owner ")
    assert "mode 0666): it is writable by group and others; a manifest must be" in line
    assert line.endswith(f" {path} && chmod 0644 {path}")
    with pytest.raises(ManifestError, match="did not find expected"):
        load_manifest(path, node_name=NODE, trust_non_root_files=True)


# --- the running source ---------------------------------------------------------------------------


def test_a_world_writable_directory_refuses_every_file_and_is_published(mdir: Path) -> None:
    for name in ("a", "b"):
        write(mdir / f"{name}.yaml", pod_yaml(name))
    os.chmod(mdir, 0o777)
    desired = make_source(mdir).scan_once()
    assert desired.pods == {}
    assert sorted(desired.errors) == [str(mdir / "a.yaml"), str(mdir / "b.yaml")]
    for error in desired.errors.values():
        assert f"directory {mdir} is not trusted" in str(error)
    assert desired.directory_error is not None
    assert desired.directory_error.source == str(mdir)
    assert f" {mdir} && chmod go-w {mdir}" in str(desired.directory_error)


def test_opting_out_reads_what_the_rules_would_refuse(mdir: Path) -> None:
    write(mdir / "web.yaml", pod_yaml("web"))
    (mdir / "web.yaml").chmod(0o666)
    os.chmod(mdir, 0o777)
    source = ManifestSource(mdir, node_name=NODE, trust_non_root_files=True)
    desired = source.scan_once()
    assert has_pod("web-node-1")(desired)
    assert desired.errors == {} and desired.directory_error is None


async def test_chmod_of_the_directory_refuses_at_once_keeps_the_uid_and_a_fix_restores_it(
    mdir: Path,
) -> None:
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    # A long resync: only inotify's IN_ATTRIB on the directory can make this quick.
    async with running(make_source(mdir, resync_period=60)) as rec:
        uid = the_pod(rec.last, "web-node-1").uid
        os.chmod(mdir, 0o777)
        refused = await rec.wait_for(lambda d: str(path) in d.errors)
        assert refused.pods == {} and refused.directory_error is not None
        assert "Forbidden: directory" in str(refused.errors[str(path)])

        os.chmod(mdir, 0o755)
        os.chmod(path, 0o644)  # the same mode, but a fresh ctime: the file must settle again
        fixed = await rec.wait_for(has_pod("web-node-1"))
        assert the_pod(fixed, "web-node-1").uid == uid
        assert fixed.errors == {} and fixed.directory_error is None
        # Never a snapshot with neither the pod nor its error: the reconciler would stop it.
        assert all(has_pod("web-node-1")(d) or str(path) in d.errors for d in rec.sets)


def test_the_sources_refusal_is_check_paths_word_for_word(tmp_path: Path) -> None:
    # The source walks to the directory once per pass and judges each plain file on its own;
    # the answer must be the full walk's.
    parent = tmp_path / "open"
    mdir = parent / "manifests"
    mdir.mkdir(parents=True)
    path = mdir / "web.yaml"
    write(path, pod_yaml("web"))
    os.chmod(path, 0o666)
    os.chmod(parent, 0o777)
    desired = make_source(mdir).scan_once()
    expected = refusal(str(path), check_path(str(path), owners=OWNERS), owners=OWNERS)
    assert len(expected.errors) == 2
    assert desired.errors[str(path)].lines() == expected.lines()


async def test_a_parents_chmod_is_seen_at_once(tmp_path: Path) -> None:
    parent = tmp_path / "etc"
    mdir = parent / "manifests"
    mdir.mkdir(parents=True)
    write(mdir / "web.yaml", pod_yaml("web"))
    # A long resync: the parent is watched for the names the path is resolved through.
    async with running(make_source(mdir, resync_period=60)) as rec:
        assert has_pod("web-node-1")(rec.last)
        os.chmod(parent, 0o777)
        refused = await rec.wait_for(lacks_pod("web-node-1"))
        assert refused.directory_error is not None
        assert f"directory {parent} is not trusted" in str(refused.directory_error)
        os.chmod(parent, 0o755)
        await rec.wait_for(lambda d: has_pod("web-node-1")(d) and d.directory_error is None)


async def test_a_symlink_targets_directory_turning_writable_is_seen_by_the_resync(
    tmp_path: Path, mdir: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere / "web.yaml", pod_yaml("web"))
    (mdir / "web.yaml").symlink_to(elsewhere / "web.yaml")
    async with running(make_source(mdir, resync_period=0.2)) as rec:
        assert has_pod("web-node-1")(rec.last)
        os.chmod(elsewhere, 0o777)
        refused = await rec.wait_for(lacks_pod("web-node-1"))
        assert f"directory {elsewhere} is not trusted" in str(
            refused.errors[str(mdir / "web.yaml")]
        )
        assert refused.directory_error is None  # the manifests directory itself is fine


async def test_a_file_of_another_users_is_refused_unread_and_accepted_after_chown(
    require_root: None, mdir: Path
) -> None:
    path = mdir / "web.yaml"
    async with running(make_source(mdir)) as rec:
        write(path, pod_yaml("web"))
        os.chown(path, NOBODY, NOBODY)
        refused = await rec.wait_for(lambda d: str(path) in d.errors)
        (line,) = refused.errors[str(path)].lines()
        assert "owner nobody, uid 65534, mode 0644" in line
        assert line.endswith(f"fix: chown root:root {path} && chmod 0644 {path}")
        assert refused.pods == {}

        os.chown(path, 0, 0)  # IN_ATTRIB: no resync needed
        accepted = await rec.wait_for(has_pod("web-node-1"))
        assert accepted.errors == {}


async def test_a_refused_file_is_not_parsed(require_root: None, mdir: Path) -> None:
    path = mdir / "web.yaml"
    write(path, "not: [valid")
    os.chown(path, NOBODY, NOBODY)
    async with running(make_source(mdir)) as rec:
        (line,) = rec.last.errors[str(path)].lines()
        assert "Forbidden: file" in line and "did not find expected" not in line
