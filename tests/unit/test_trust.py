"""The trust rules of source/trust.py as pure functions over os.stat results built here."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from minikubelet.api.errors import ErrorType
from minikubelet.source.trust import directory_problem, file_problem, refusal, symlink_problem

ROOT_ONLY = frozenset({0})
AS_USER = frozenset({0, 1000})  # a daemon running as uid 1000
NOBODY = 65534


def st(mode: int, uid: int = 0) -> os.stat_result:
    """An os.stat_result with just the fields the rules read (mode, uid)."""
    return os.stat_result((mode, 1, 1, 1, uid, 0, 100, 0, 0, 0))


def user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# --- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o400, 0o755, 0o4644])
def test_a_regular_file_of_roots_not_writable_by_group_or_others_is_trusted(mode: int) -> None:
    assert file_problem("/m/web.yaml", st(stat.S_IFREG | mode), owners=ROOT_ONLY) is None


@pytest.mark.parametrize(
    ("mode", "writers"), [(0o664, "group"), (0o646, "others"), (0o666, "group and others")]
)
def test_a_file_writable_by_group_or_others_is_refused_whoever_owns_it(
    mode: int, writers: str
) -> None:
    problem = file_problem("/m/web.yaml", st(stat.S_IFREG | mode), owners=ROOT_ONLY)
    assert problem is not None
    assert problem.writable and not problem.bad_owner and problem.kind == "file"
    assert f"it is writable by {writers}" in problem.detail(ROOT_ONLY)


def test_a_file_owned_by_another_user_is_refused_even_with_mode_0644() -> None:
    problem = file_problem("/m/web.yaml", st(stat.S_IFREG | 0o644, uid=NOBODY), owners=ROOT_ONLY)
    assert problem is not None and problem.bad_owner and not problem.writable
    assert problem.detail(ROOT_ONLY) == (
        f"file /m/web.yaml is not trusted (owner {user(NOBODY)}, uid {NOBODY}, mode 0644): "
        "it is not owned by root; a manifest must be a regular file owned by root and not "
        "writable by group or others; fix: chown root:root /m/web.yaml && chmod 0644 /m/web.yaml"
    )


def test_both_faults_of_a_file_are_named_together() -> None:
    problem = file_problem("/m/web.yaml", st(stat.S_IFREG | 0o666, uid=NOBODY), owners=ROOT_ONLY)
    assert problem is not None
    assert "mode 0666): it is not owned by root and it is writable by group and others;" in (
        problem.detail(ROOT_ONLY)
    )


def test_not_a_regular_file_is_refused() -> None:
    problem = file_problem("/m/web.yaml", st(stat.S_IFIFO | 0o644), owners=ROOT_ONLY)
    assert problem is not None and problem.not_regular
    assert problem.fix(ROOT_ONLY) == "replace /m/web.yaml with a regular file"


def test_not_as_root_the_daemons_own_user_is_trusted_and_named_in_the_fix() -> None:
    own = st(stat.S_IFREG | 0o644, uid=1000)
    assert file_problem("/m/web.yaml", own, owners=AS_USER) is None
    assert file_problem("/m/web.yaml", st(stat.S_IFREG | 0o644), owners=AS_USER) is None
    other = file_problem("/m/web.yaml", st(stat.S_IFREG | 0o644, uid=NOBODY), owners=AS_USER)
    assert other is not None
    detail = other.detail(AS_USER)
    assert f"owned by root or {user(1000)} (the daemon's user)" in detail
    assert detail.endswith(f"fix: chown {user(1000)}: /m/web.yaml && chmod 0644 /m/web.yaml")


def test_the_fix_quotes_a_path_for_the_shell() -> None:
    problem = file_problem("/m/my pod.yaml", st(stat.S_IFREG | 0o666), owners=ROOT_ONLY)
    assert problem is not None
    assert problem.fix(ROOT_ONLY) == (
        "chown root:root '/m/my pod.yaml' && chmod 0644 '/m/my pod.yaml'"
    )


# --- directories --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o755, 0o700, 0o711, 0o555])
def test_a_directory_of_roots_not_writable_by_group_or_others_is_trusted(mode: int) -> None:
    assert directory_problem("/etc", st(stat.S_IFDIR | mode), owners=ROOT_ONLY) is None


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o2775])
def test_a_directory_writable_by_group_or_others_is_refused(mode: int) -> None:
    problem = directory_problem("/srv/m", st(stat.S_IFDIR | mode), owners=ROOT_ONLY)
    assert problem is not None and problem.writable and problem.kind == "directory"
    detail = problem.detail(ROOT_ONLY)
    assert detail.startswith(
        f"directory /srv/m is not trusted (owner root, uid 0, mode {mode:04o})"
    )
    assert "unless sticky and owned by root like /tmp" in detail
    assert detail.endswith("fix: chown root:root /srv/m && chmod go-w /srv/m")


def test_a_sticky_directory_of_roots_like_tmp_is_trusted() -> None:
    assert directory_problem("/tmp", st(stat.S_IFDIR | 0o1777), owners=ROOT_ONLY) is None


def test_a_sticky_world_writable_directory_of_another_user_is_refused() -> None:
    for uid in (NOBODY, 1000):
        problem = directory_problem("/srv/m", st(stat.S_IFDIR | 0o1777, uid=uid), owners=AS_USER)
        assert problem is not None and problem.writable


def test_a_directory_owned_by_another_user_is_refused_even_with_mode_0755() -> None:
    problem = directory_problem("/srv/m", st(stat.S_IFDIR | 0o755, uid=NOBODY), owners=ROOT_ONLY)
    assert problem is not None and problem.bad_owner and not problem.writable


# --- symlinks -----------------------------------------------------------------------------------


def test_a_symlink_is_judged_by_its_owner_alone() -> None:
    link = st(stat.S_IFLNK | 0o777)
    assert symlink_problem("/m/web.yaml", link, owners=ROOT_ONLY) is None
    theirs = symlink_problem("/m/web.yaml", st(stat.S_IFLNK | 0o777, uid=NOBODY), owners=ROOT_ONLY)
    assert theirs is not None and theirs.kind == "symlink" and theirs.bad_owner
    assert theirs.detail(ROOT_ONLY) == (
        f"symlink /m/web.yaml is not trusted (owner {user(NOBODY)}, uid {NOBODY}, mode 0777): "
        "it is not owned by root; a symlink on the way to a manifest must be owned by root; "
        "fix: chown -h root:root /m/web.yaml"
    )


# --- the error ----------------------------------------------------------------------------------


def test_refusal_is_a_manifest_error_with_one_forbidden_line_per_problem() -> None:
    problems = [
        directory_problem("/srv/m", st(stat.S_IFDIR | 0o777), owners=ROOT_ONLY),
        file_problem("/srv/m/web.yaml", st(stat.S_IFREG | 0o644, uid=NOBODY), owners=ROOT_ONLY),
    ]
    error = refusal("/srv/m/web.yaml", [p for p in problems if p], owners=ROOT_ONLY)
    assert error.source == "/srv/m/web.yaml"
    assert [e.type for e in error.errors] == [ErrorType.FORBIDDEN, ErrorType.FORBIDDEN]
    lines = error.lines()
    assert lines[0].startswith("/srv/m/web.yaml: Forbidden: directory /srv/m is not trusted")
    assert lines[1].startswith("/srv/m/web.yaml: Forbidden: file /srv/m/web.yaml is not trusted")
