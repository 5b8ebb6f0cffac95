"""Whether a manifest, and every directory on its way, is as trusted as the daemon itself.

A manifest can ask for anything the daemon can do (``hostPath: /``, ``runAsUser: 0``), so whoever
can write one, or swap one in, can run anything as the daemon's user: as root, usually. A file
is therefore read only if nobody else could have written it or put it there, the way sshd's
StrictModes treats ``authorized_keys`` and sudo treats ``sudoers``:

- **A file** must be a regular file owned by a trusted user and not writable by group or others.
- **A directory** must be owned by a trusted user and not writable by group or others, unless
  it is sticky and owned by root (``/tmp``): others may add names there, but may not rename or
  remove ours.
- **Which directories:** every directory in which a name is looked up while the path is
  resolved from ``/``: the path's parents, and for each symlink met on the way, the directories
  its target is resolved through. Whoever can write one of those can swap what the next name
  leads to. sshd checks the parents of the resolved path (``realpath``); the lookup directories
  include them, and also the directory holding each symlink, which decides where it points.
- **A symlink** on the way must be owned by a trusted user (its mode means nothing, and it
  cannot be changed, only replaced): one left by someone else, in a sticky directory or while a
  directory was open to others, would let them choose which of root's files becomes a pod.
- **Trusted users** are root and the user the daemon runs as (the same person as root when
  the daemon runs as root; the only user who matters when it does not).

The rules themselves (``file_problem``, ``directory_problem``) are pure functions over
``os.stat`` results. ``check_path`` walks a path with ``lstat`` and ``readlink`` only
(pathwalk.py: it never opens anything, so a FIFO cannot block it); a path that cannot be walked
(missing, not a directory, a symlink loop, no permission) ends the walk without a problem, since
reading it fails anyway and says why. ``refusal`` turns problems into a ``ManifestError`` in the
shape of a validation error, each naming the path, its owner and mode, and the fix. See
docs/security.md for the reasoning and the limits.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.source import pathwalk

__all__ = [
    "Problem",
    "check_path",
    "directory_problem",
    "file_problem",
    "judge_walk",
    "refusal",
    "symlink_problem",
    "trusted_owners",
]

_GROUP_OR_OTHER_WRITE: Final = stat.S_IWGRP | stat.S_IWOTH

Lstat = pathwalk.Lstat


def trusted_owners() -> frozenset[int]:
    """Root, and the user this process runs as."""
    return frozenset({0, os.geteuid()})


@dataclass(frozen=True, slots=True)
class Problem:
    """One file, directory or symlink that fails the rules, and why."""

    path: str  # what fails; only its last component may be a symlink
    kind: Literal["file", "directory", "symlink"]
    uid: int  # its owner
    mode: int  # its permission bits, with setuid/setgid/sticky (stat.S_IMODE)
    not_regular: bool  # a file that is not a regular file
    bad_owner: bool  # owned by someone other than the trusted users
    writable: bool  # writable by group or others (and not a sticky directory of root's)

    def detail(self, owners: frozenset[int]) -> str:
        """``file F is not trusted (owner nobody, uid 65534, mode 0666): <what is wrong>; <the
        rule>; fix: <command>``."""
        wrong = []
        if self.not_regular:
            wrong.append("it is not a regular file")
        if self.bad_owner:
            wrong.append(f"it is not owned by {_owners_text(owners)}")
        if self.writable:
            wrong.append("it is writable by " + _writers(self.mode))
        if self.kind == "symlink":
            rule = f"a symlink on the way to a manifest must be owned by {_owners_text(owners)}"
        elif self.kind == "directory":
            rule = (
                f"every directory up to / must be owned by {_owners_text(owners)} and not "
                "writable by group or others, unless sticky and owned by root like /tmp"
            )
        else:
            rule = (
                f"a manifest must be a regular file owned by {_owners_text(owners)} and not "
                "writable by group or others"
            )
        return (
            f"{self.kind} {self.path} is not trusted (owner {_user(self.uid)}, uid {self.uid}, "
            f"mode {self.mode:04o}): {' and '.join(wrong)}; {rule}; fix: {self.fix(owners)}"
        )

    def fix(self, owners: frozenset[int]) -> str:
        """The commands that make this path pass, run as root."""
        owner = "root:root" if max(owners) == 0 else f"{_user(max(owners))}:"
        quoted = shlex.quote(self.path)
        if self.not_regular:
            return f"replace {quoted} with a regular file"
        if self.kind == "symlink":
            return f"chown -h {owner} {quoted}"
        chmod = "go-w" if self.kind == "directory" else "0644"
        return f"chown {owner} {quoted} && chmod {chmod} {quoted}"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _owners_text(owners: frozenset[int]) -> str:
    others = sorted(owners - {0})
    if not others:
        return "root"
    return "root or " + " or ".join(f"{_user(u)} (the daemon's user)" for u in others)


def _writers(mode: int) -> str:
    who = [w for bit, w in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if mode & bit]
    return " and ".join(who)


# --- the rules --------------------------------------------------------------------------------


def _problem(
    path: str,
    kind: Literal["file", "directory", "symlink"],
    st: os.stat_result,
    *,
    not_regular: bool = False,
    bad_owner: bool,
    writable: bool = False,
) -> Problem | None:
    if not (not_regular or bad_owner or writable):
        return None
    return Problem(
        path=path,
        kind=kind,
        uid=st.st_uid,
        mode=stat.S_IMODE(st.st_mode),
        not_regular=not_regular,
        bad_owner=bad_owner,
        writable=writable,
    )


def file_problem(path: str, st: os.stat_result, *, owners: frozenset[int]) -> Problem | None:
    """A manifest file: regular, owned by one of ``owners``, not writable by group or others."""
    return _problem(
        path,
        "file",
        st,
        not_regular=not stat.S_ISREG(st.st_mode),
        bad_owner=st.st_uid not in owners,
        writable=bool(st.st_mode & _GROUP_OR_OTHER_WRITE),
    )


def directory_problem(path: str, st: os.stat_result, *, owners: frozenset[int]) -> Problem | None:
    """A directory on the way to a manifest: owned by one of ``owners`` and not writable by group
    or others; or sticky and owned by root, like /tmp (others may add names, not replace ours)."""
    if st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
        return None
    return _problem(
        path,
        "directory",
        st,
        bad_owner=st.st_uid not in owners,
        writable=bool(st.st_mode & _GROUP_OR_OTHER_WRITE),
    )


def symlink_problem(path: str, st: os.stat_result, *, owners: frozenset[int]) -> Problem | None:
    """A symlink on the way to a manifest: owned by one of ``owners`` (its mode means nothing)."""
    return _problem(path, "symlink", st, bad_owner=st.st_uid not in owners)


# --- the walk ---------------------------------------------------------------------------------


def check_path(path: str, *, owners: frozenset[int], lstat: Lstat = os.lstat) -> list[Problem]:
    """Every problem on the way to ``path`` and with ``path`` itself, parents first.

    Resolves ``path`` one name at a time from ``/`` (a relative path from the working
    directory), following symlinks (pathwalk.py), and judges each directory a name is looked up
    in, each symlink met, then the object reached: a directory by the directory rule, a regular
    file by the file rule (anything else is left to the reader). ``lstat`` may be a cache
    shared by the walks of one pass."""
    return judge_walk(pathwalk.walk(path, lstat=lstat), owners=owners)


def judge_walk(walked: pathwalk.Walk, *, owners: frozenset[int]) -> list[Problem]:
    """``check_path`` for a path already walked."""
    problems: list[Problem] = []
    judged: set[str] = set()

    def judge(directory: str, st: os.stat_result) -> None:
        if directory not in judged:
            judged.add(directory)
            problem = directory_problem(directory, st, owners=owners)
            if problem is not None:
                problems.append(problem)

    for step in walked.steps:
        if isinstance(step, pathwalk.Lookup):
            judge(step.directory, step.st)  # a name is looked up in it: it decides what we reach
        elif (problem := symlink_problem(step.path, step.st, owners=owners)) is not None:
            problems.append(problem)
    if walked.path is None or walked.st is None:
        return problems  # missing or unreachable: nothing there to trust, reading it says so
    if stat.S_ISDIR(walked.st.st_mode):
        judge(walked.path, walked.st)
    elif stat.S_ISREG(walked.st.st_mode):
        problem = file_problem(walked.path, walked.st, owners=owners)
        if problem is not None:
            problems.append(problem)
    return problems


def refusal(source: str, problems: Sequence[Problem], *, owners: frozenset[int]) -> ManifestError:
    """The ManifestError for ``source``: one Forbidden field error per problem."""
    return ManifestError(
        source, [FieldError(ErrorType.FORBIDDEN, "", p.detail(owners)) for p in problems]
    )
