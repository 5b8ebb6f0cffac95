"""The manifest directory as a desired set of static pods: kubelet's file source, pains fixed.

This module owns everything between "a file appeared in the manifests directory" and "the
reconciler holds a ``DesiredSet``": which names count, when a file is complete enough to read,
the static pod identity (``<name>-<node>``, UID, ``config.*`` annotations), duplicate names, and
the per-file errors. It publishes whole snapshots, level-triggered, latest wins; consumers never
see a diff, so a lost wake-up or a burst of events can only delay the truth, never corrupt it.

Why it is shaped this way:

- **Two triggers, one pass.** inotify (asyncinotify; 0 CPU when idle) says *which* names to look
  at, or that the path to the directory may lead elsewhere now; a full resync every
  ``resync_period`` seconds (kubelet's ``fileCheckFrequency``) catches what inotify cannot see:
  a symlinked file's target edited elsewhere, a queue overflow, a watch that could not be
  placed. Both end in the same ``_refresh`` pass,
  which is plain blocking code run through ``asyncio.to_thread`` (listing, stat, read and YAML
  parsing never block the loop). Only that pass touches the per-file state, and only one pass
  runs at a time; the loop side only collects names from inotify events.
- **Settling.** A path's observed state (inode, size, mtime_ns, ctime_ns; or "absent") must be
  unchanged for ``settle_delay`` seconds before it is acted upon. "Unchanged for" is measured
  from our first sight of that state, or from the file's own ctime when that is older (so files
  that have sat still are read at once, at start and on resync). IN_CLOSE_WRITE and IN_MOVED_TO
  mean the writer is done: such a file is read at once. A file is read through one descriptor
  and fstat'ed before and after the read; a change in between puts it back to settling. Until a
  path settles, the snapshot keeps what it had for it (the old pod, the old error, or nothing),
  so a half-written file never starts a pod and never removes a running one; a deletion settles
  the same way, so an editor's rename-away-then-write does not stop the pod. A file of
  ``LARGE_FILE_BYTES`` or more that settles in a pass where smaller files changed is read in
  the next pass, right after their snapshot is published: parsing a large (or abusive) file
  costs tens of ms, and it must not hold up ordinary pods.
- **Swaps.** Fleet tools replace the whole directory atomically: git-sync swaps a symlink
  (``current -> rev2``), others rename a new directory over the old one. ``pathwatch.py`` watches
  every directory the path is resolved through, for the names looked up there, so a swap
  anywhere on the way is an event; the pass then walks the path again and watches what it leads
  to now. Each pass opens the directory once and lists, stats and reads through that
  descriptor, so a snapshot never mixes two revisions however often the path is swapped
  meanwhile; a descriptor that is not the directory of the last walk (a swap whose event is
  still queued) makes the pass walk again first. A directory swapped in is complete by the
  swapper's contract, so its pass reads every file and drops every file gone at once, without
  settling: the swap is one snapshot.
- **Identity.** UID = the first 128 bits (32 hex characters) of SHA-256 over the file's raw bytes
  and ``host:<node>`` (length-framed; see ``static_pod_uid``). Raw bytes rather than the decoded
  pod (kubelet hashes the decoded object with fnv-128a) keep UIDs stable across minikubelet
  upgrades that change defaulting, which restart recovery needs; the cost is that a
  comment-only edit also recreates the pod ("any edit is a new pod"). kubelet also hashes the
  file's path; we do not, so that a manifest that only moved (renamed, or swapped in under
  another name, or a ``--manifests`` that now names a git-sync link) keeps its pod, and two pods
  cannot share a UID anyway: equal bytes declare the same name, and one of them is a duplicate.
  A file gone whose bytes live on under another name is dropped at once (no settling), so the
  rename is one snapshot in which the pod's ``source`` changes and its UID does not. A file
  whose bytes did not change keeps its ``StaticPod`` object (and so ``config.seen``) across
  resyncs, touches and swaps, and is not parsed again.
- **Duplicates.** Two files declaring the same ``<namespace>/<full name>``: the file that already
  owned the key in the previous snapshot keeps it; otherwise sorted path order wins. The loser
  gets a ``metadata.name`` Duplicate error naming the winner.

Paths are reported as ``directory / name`` with ``directory`` exactly as given to the
constructor (``/srv/m/current/web.yaml`` whatever ``current`` leads to); that string is the
``source``, the ``errors`` key and the ``minikubelet.io/config.file`` annotation.

**Trust.** A manifest can run anything as the daemon's user, so the directory is exactly as
trusted as root, and ``trust.py`` enforces that (sshd's StrictModes): a file is read only if it,
the directory and every directory on its way from ``/`` (symlinks followed) pass the rules there.
A file that fails is an error like any other (a Forbidden field error naming the path, its owner,
mode and fix) and is neither read nor parsed; the opened file is judged again by ``fstat``, so a
swap between the check and the open is caught. A failing directory fails every file below it and
is also published as ``DesiredSet.directory_error``. Files are judged when they are (re)read;
their fingerprints do not change when a directory up the path is chmodded, so every full pass
judges the directory and every known file again, and a file trusted again is read afresh (its
refusal stays published until then, so a running pod is not stopped in between). A change of
the mode or owner of the directory, of a directory on its way or of a symlink on its way
(IN_ATTRIB, seen by the watches above) triggers a full pass at once; one on the way to a
symlinked file's target is seen by the next resync. A directory swapped in is judged by the
same full pass before anything in it is read. ``trust_non_root_files`` turns all of this off.

**Unavailable is not empty.** A directory that does not exist, is not a directory or cannot be
listed is not created, and it does not mean "no pods": every entry stays as last read (running
pods keep running, nothing settles), and ``DesiredSet.unavailable`` says why. The directory it
would appear in is watched, so its return (created, renamed in, a link made) is read at once,
with the usual settling. Removing every file from a directory that exists is how all pods are
removed. ``missing_is_empty`` restores kubelet's way: unavailable counts as empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from asyncinotify import Event, Inotify, Mask

from minikubelet.api.document import MAX_MANIFEST_BYTES
from minikubelet.api.errors import ErrorType, FieldError, ManifestError
from minikubelet.api.identity import (
    CONFIG_FILE,
    CONFIG_HASH,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    DesiredSet,
    StaticPod,
)
from minikubelet.api.model import PodKey, pod_key
from minikubelet.api.validation import DecodedPod, decode_pod
from minikubelet.source import pathwalk, pathwatch, trust

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ManifestSource",
    "is_manifest_name",
    "load_manifest",
    "static_pod_uid",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = MAX_MANIFEST_BYTES  # 1 MiB, the API server's (kubelet reads 10 MiB)
# A file this big may take tens of ms to parse (a 1 MiB manifest of 10,000 values: 60-80 ms):
# it waits for the next pass when smaller files changed in this one, so it never delays them.
LARGE_FILE_BYTES: Final = 64 * 1024

# Editor and package-manager leftovers (``web.yaml~``, ``.web.yaml.swp``, ``web.yaml.bak``,
# ``.orig``, ``.dpkg-new``, ``.rpmsave``, a writer's ``web.yaml.tmp``) never end in one of these,
# and dotfiles are skipped, so an extension allow-list is the whole filter (kubelet has none:
# its backups become pods, K issue #136962).
_EXTENSIONS: Final = (".yaml", ".yml", ".json")

_WRITER_DONE: Final = Mask.CLOSE_WRITE | Mask.MOVED_TO

# File timestamps come from the kernel's coarse clock, which may lag time.time() by a tick.
_CLOCK_SLACK: Final = 0.01
_MIN_SLEEP: Final = 0.001


def is_manifest_name(name: str) -> bool:
    """Whether a directory entry names a manifest: ``*.yaml``, ``*.yml`` or ``*.json`` (the
    extension in any case), and not a dotfile."""
    return not name.startswith(".") and name.lower().endswith(_EXTENSIONS)


def static_pod_uid(content: bytes, *, node_name: str) -> str:
    """The static pod UID: sha256(len(content) as 8 bytes BE, content, "host:<node>") truncated
    to 128 bits, as 32 lowercase hex characters. kubelet hashes the decoded pod, the node and
    the file's path; see the module docstring for why these are the raw bytes and no path."""
    h = hashlib.sha256()
    h.update(len(content).to_bytes(8, "big"))
    h.update(content)
    h.update(f"host:{node_name}".encode())
    return h.hexdigest()[:32]


def load_manifest(
    path: Path,
    *,
    node_name: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    trust_non_root_files: bool = False,
) -> StaticPod:
    """Read, decode and name one manifest the way the source would (for ``validate``), trust
    checks included (against root and this process's user).

    Blocking. No name filter and no settling: the caller chose the file. Raises ManifestError."""
    source = str(path)
    owners = None if trust_non_root_files else trust.trusted_owners()
    if owners is not None and (problems := trust.check_path(source, owners=owners)):
        raise trust.refusal(source, problems, owners=owners)
    outcome = _read_file(source, max_bytes=max_bytes, owners=owners)
    if isinstance(outcome, _Unreadable | _Refused):
        raise outcome.error
    if isinstance(outcome, _Absent):
        what = "is a directory, not a manifest file" if path.is_dir() else "no such file"
        raise ManifestError(source, [FieldError(ErrorType.NOT_FOUND, "", what)])
    if isinstance(outcome, _Changing):
        raise ManifestError(
            source, [FieldError(ErrorType.INVALID, "", "the file changed while it was read")]
        )
    uid = static_pod_uid(outcome.data, node_name=node_name)
    result = _decode(outcome.data, source=source, uid=uid, node_name=node_name)
    if isinstance(result, ManifestError):
        raise result
    return result


# --- reading one file -------------------------------------------------------------------------

_Fingerprint = tuple[int, int, int, int]  # (st_ino, st_size, st_mtime_ns, st_ctime_ns)
_UNSTATABLE: Final[_Fingerprint] = (-1, -1, -1, -1)  # stat() failed for another reason
_RECHECK: Final[_Fingerprint] = (-2, -2, -2, -2)  # refused, trusted now: read it afresh


def _fingerprint(st: os.stat_result) -> _Fingerprint:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class _Content:
    fingerprint: _Fingerprint  # fstat of the descriptor, equal before and after the read
    data: bytes


@dataclass(frozen=True, slots=True)
class _Changing:
    fingerprint: _Fingerprint  # the state after the read, which differs from before it


@dataclass(frozen=True, slots=True)
class _Unreadable:
    fingerprint: _Fingerprint | None  # None when even fstat was impossible
    error: ManifestError


@dataclass(frozen=True, slots=True)
class _Refused:
    fingerprint: _Fingerprint
    error: ManifestError  # the trust rules' refusal of the file that was opened


@dataclass(frozen=True, slots=True)
class _Absent:
    pass


def _read_file(
    path: str, *, max_bytes: int, owners: frozenset[int] | None = None, dir_fd: int | None = None
) -> _Content | _Changing | _Unreadable | _Refused | _Absent:
    """One read through one descriptor. O_NONBLOCK so that a FIFO named ``x.yaml`` (or one
    swapped in after a stat) cannot hang the thread; fstat decides what the file is, and with
    ``owners`` whether it may be read at all (the file opened, not the one checked before).
    With ``dir_fd``, the file of that name in that directory is read (``path`` names it)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        if dir_fd is None:
            fd = os.open(path, flags)
        else:
            fd = os.open(os.path.basename(path), flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return _Absent()
    except IsADirectoryError:
        return _Absent()
    except OSError as exc:
        return _Unreadable(None, _io_error(path, exc))
    try:
        before = os.fstat(fd)
        fp = _fingerprint(before)
        if stat.S_ISDIR(before.st_mode):
            return _Absent()
        if not stat.S_ISREG(before.st_mode):
            return _Unreadable(fp, _not_regular(path))
        if owners is not None:
            problem = trust.file_problem(path, before, owners=owners)
            if problem is not None:
                return _Refused(fp, trust.refusal(path, [problem], owners=owners))
        if before.st_size > max_bytes:
            return _Unreadable(fp, _too_big(path, before.st_size, max_bytes))
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1024 * 1024, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        after = _fingerprint(os.fstat(fd))
    except OSError as exc:
        return _Unreadable(None, _io_error(path, exc))
    finally:
        os.close(fd)
    if after != fp:
        return _Changing(after)
    if total > max_bytes:  # grew between fstat and read, yet fstat agrees: be safe anyway
        return _Unreadable(fp, _too_big(path, total, max_bytes))
    return _Content(fp, b"".join(chunks))


def _io_error(path: str, exc: OSError) -> ManifestError:
    reason = exc.strerror or str(exc)
    return ManifestError(path, [FieldError(ErrorType.INVALID, "", f"cannot read file: {reason}")])


def _not_regular(path: str) -> ManifestError:
    return ManifestError(
        path, [FieldError(ErrorType.NOT_SUPPORTED, "", "not a regular file or a directory")]
    )


def _too_big(path: str, size: int, max_bytes: int) -> ManifestError:
    detail = f"file has {size} bytes, more than the limit of {max_bytes} bytes"
    if max_bytes % (1024 * 1024) == 0:
        detail += f" ({max_bytes // (1024 * 1024)} MiB)"
    return ManifestError(path, [FieldError(ErrorType.TOO_LONG, "", detail)])


# --- identity ---------------------------------------------------------------------------------

_MAX_NAME: Final = 253  # a pod name is a DNS subdomain


def _rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _decode(data: bytes, *, source: str, uid: str, node_name: str) -> StaticPod | ManifestError:
    try:
        decoded = decode_pod(data, source=source)
    except ManifestError as exc:
        return exc
    except Exception as exc:
        # A validation bug must not take every other pod down with this one file.
        logger.exception("%s: internal error while decoding the manifest", source)
        return ManifestError(
            source,
            [FieldError(ErrorType.INVALID, "", f"internal error: {type(exc).__name__}: {exc}")],
        )
    return _identify(decoded, source=source, uid=uid, node_name=node_name, seen_ns=time.time_ns())


def _identify(
    decoded: DecodedPod, *, source: str, uid: str, node_name: str, seen_ns: int
) -> StaticPod | ManifestError:
    """kubelet's applyDefaults for file-sourced pods (pkg/kubelet/config/common.go)."""
    pod = decoded.pod
    meta = pod.metadata
    if not meta.name:
        return ManifestError(
            source,
            [FieldError(ErrorType.REQUIRED, "metadata.name", "name or generateName is required")],
        )
    full_name = f"{meta.name}-{node_name.lower()}"
    if len(full_name) > _MAX_NAME:
        return ManifestError(
            source,
            [
                FieldError(
                    ErrorType.TOO_LONG,
                    "metadata.name",
                    f"may not be more than {_MAX_NAME} characters once the node name is "
                    f'appended ("{meta.name}-<node name>" is {len(full_name)})',
                )
            ],
        )
    namespace = meta.namespace or "default"
    annotations = dict(meta.annotations or {})
    annotations.update(
        {
            CONFIG_SOURCE: "file",
            CONFIG_HASH: uid,
            CONFIG_SEEN: _rfc3339nano(seen_ns),
            CONFIG_FILE: source,
        }
    )
    created = datetime.fromtimestamp(seen_ns // 1_000_000_000, UTC)
    metadata = meta.model_copy(
        update={
            "name": full_name,
            "namespace": namespace,
            "uid": uid,
            "annotations": annotations,
            "creation_timestamp": created,
        }
    )
    spec = pod.spec.model_copy(update={"node_name": node_name})
    return StaticPod(
        key=pod_key(namespace, full_name),
        uid=uid,
        metadata=metadata,
        pod=pod.model_copy(update={"spec": spec}),
        source=source,
        warnings=decoded.warnings,
    )


# --- the source -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    fingerprint: _Fingerprint  # the state the result was made from
    uid: str | None  # UID of the bytes read; None when they could not be read
    result: StaticPod | ManifestError  # before duplicate resolution
    refused: bool = False  # result is the trust rules' refusal: the bytes were not read


@dataclass(frozen=True, slots=True)
class _Pending:
    fingerprint: _Fingerprint | None  # the state waiting to settle; None: the path is absent
    since: float  # time.monotonic() when this state was first observed


_Identity = tuple[int, int]  # (st_dev, st_ino) of the directory the path leads to


def _open_directory(path: Path) -> tuple[int | None, _Identity | None, OSError | None]:
    """(descriptor, identity, None) of the directory ``path`` leads to now, or (None, None,
    why). A pass lists, stats and reads through the descriptor: everything it reads comes from
    one directory, however often the path is swapped meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        return None, None, exc
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return None, None, exc
    return fd, (st.st_dev, st.st_ino), None


def _why_unreadable(directory: Path, error: OSError | None) -> str:
    """Why the manifests directory cannot be read (``error`` None: it is not a directory)."""
    if error is None or error.errno == errno.ENOTDIR:
        return f"manifest directory {directory} is not a directory"
    if error.errno == errno.ENOENT:
        return f"manifest directory {directory} does not exist"
    return f"manifest directory {directory} cannot be read: {error.strerror or error}"


class ManifestSource:
    """Watches one directory and publishes the static pods it declares (see the module doc).

    ``run`` is the daemon's entry point. ``scan_once`` is the same pass without inotify, for
    tests and one-shot use; do not call it while ``run`` is active."""

    def __init__(
        self,
        directory: Path,
        *,
        node_name: str,
        resync_period: float = 20.0,
        settle_delay: float = 0.05,
        max_bytes: int = DEFAULT_MAX_BYTES,
        trust_non_root_files: bool = False,
        missing_is_empty: bool = False,
    ) -> None:
        """``missing_is_empty``: a directory that does not exist or cannot be read declares no
        pods (kubelet's way), instead of keeping what was last read from it."""
        self._directory = directory
        self._node_name = node_name
        self._resync_period = resync_period
        self._settle_delay = settle_delay
        self._max_bytes = max_bytes
        # Who may own (and alone write) manifests and the directories on their way; None: anyone.
        self._owners = None if trust_non_root_files else trust.trusted_owners()
        self._missing_is_empty = missing_is_empty

        # State owned by the refresh pass (one at a time, in a worker thread).
        self._entries: dict[str, _Entry] = {}  # by path: the last settled result per file
        self._pending: dict[str, _Pending] = {}  # by path: changes waiting to settle
        self._desired = DesiredSet()  # the latest snapshot; replaced, never mutated
        self._inotify: Inotify | None = None  # set by run(); None: resync only
        # The watches on the directory and on its way (shared with the reader; see pathwatch).
        self._paths = pathwatch.PathWatch(None, describe=self._cannot_watch)
        self._resolved = False  # the path has been walked (and watched) since run() began
        self._again = False  # the path changed under the last pass: walk it again, at once
        self._ident: _Identity | None = None  # the directory the path led to at the last walk
        self._real: str | None = None  # that directory's path, free of symlinks (for the log)
        self._unavailable: str | None = None  # why the directory cannot be read (published)
        self._directory_error: ManifestError | None = None  # the directory fails the trust rules
        self._lstat: trust.Lstat = os.lstat  # per pass: a cache shared by that pass's walks
        self._pass_dfd: int | None = None  # per pass: the directory it reads (see _refresh)
        self._pass_walk: tuple[pathwalk.Walk, list[trust.Problem]] | None = None  # and its trust

        # State owned by the event loop (the inotify reader), handed over before each pass.
        self._dirty: set[str] = set()  # paths named by events since the last pass
        self._done: set[str] = set()  # of those, paths whose writer finished (close, moved in)
        self._deferred_done: set[str] = set()  # done paths a pass left for the next (large)
        # A full pass is needed: the kernel dropped events, or the path to the directory (or
        # the mode of a directory on it) changed.
        self._rescan = False
        self._settling: frozenset[str] = frozenset()  # paths pending after the last pass
        self._wake = asyncio.Event()  # replaced in run(): an Event binds to its first loop
        self._running = False

    @property
    def directory(self) -> Path:
        return self._directory

    def snapshot(self) -> DesiredSet:
        """The latest published desired set (empty before the first pass)."""
        return self._desired

    def scan_once(self, *, wait: float | None = None) -> DesiredSet:
        """A full pass over the directory, blocking, without inotify. Files still settling are
        waited for, up to ``wait`` seconds (default: max(1 s, 4 x settle_delay))."""
        if self._running:
            raise RuntimeError("scan_once() while run() is active")
        return self._initial_pass(wait)

    async def run(self, publish: Callable[[DesiredSet], None]) -> None:
        """Scan, publish once, then publish every change until cancelled."""
        if self._running:
            raise RuntimeError("ManifestSource.run() is already running")
        self._running = True
        self._wake = asyncio.Event()
        try:
            inotify: Inotify | None = Inotify(cache_size=256)
        except OSError as exc:
            logger.warning(
                "%s: inotify unavailable (%s); relying on the resync every %gs",
                self._directory,
                exc,
                self._resync_period,
            )
            inotify = None
        self._inotify = inotify
        self._paths = pathwatch.PathWatch(inotify, describe=self._cannot_watch)
        self._resolved = False
        try:
            async with asyncio.TaskGroup() as tg:
                if inotify is not None:
                    tg.create_task(self._read_events(inotify), name=f"inotify {self._directory}")
                await self._main_loop(publish)
        finally:
            self._inotify = None
            self._paths = pathwatch.PathWatch(None, describe=self._cannot_watch)
            self._resolved = False
            if inotify is not None:
                inotify.close()
            self._running = False

    # --- loop side ----------------------------------------------------------------------------

    async def _main_loop(self, publish: Callable[[DesiredSet], None]) -> None:
        loop = asyncio.get_running_loop()
        # The first snapshot should be complete: a consumer that adopts running pods must not
        # see an empty set only because a file's ctime is a few milliseconds old.
        deadline = loop.time() + self._initial_wait()
        settle_in = await self._pass(full=True)
        while settle_in is not None and loop.time() + settle_in <= deadline:
            await asyncio.sleep(settle_in)
            settle_in = await self._pass(full=False)
        published = self._desired
        publish(published)
        next_resync = loop.time() + self._resync_period
        while True:
            timeout = next_resync - loop.time()
            if settle_in is not None:
                timeout = min(timeout, settle_in)
            if timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                # Let the reader drain what the kernel has already queued: one pass per burst.
                await asyncio.sleep(0)
            self._wake.clear()

            full = loop.time() >= next_resync
            if full:
                next_resync = loop.time() + self._resync_period
            settle_in = await self._pass(full=full)
            if self._desired is not published:
                published = self._desired
                publish(published)

    async def _pass(self, *, full: bool) -> float | None:
        """Hand what inotify collected to one refresh pass in a worker thread."""
        dirty, self._dirty = self._dirty, set()
        done, self._done = self._done, set()
        full = full or self._rescan
        self._rescan = False
        work = asyncio.ensure_future(
            asyncio.to_thread(self._refresh, full=full, dirty=dirty, done=done)
        )
        try:
            settle_in = await asyncio.shield(work)
        except asyncio.CancelledError:
            # A thread cannot be interrupted. Let the pass finish before run() closes the
            # inotify instance and hands the state to anyone else; it is short (stat and, for
            # changed files only, read and parse).
            with contextlib.suppress(Exception):
                await work
            raise
        self._settling = frozenset(self._pending)
        self._done |= self._deferred_done
        self._deferred_done = set()
        return settle_in

    async def _read_events(self, inotify: Inotify) -> None:
        async for event in inotify:
            if self._note(event):
                self._wake.set()

    def _note(self, event: Event) -> bool:
        """Record one event; True when the main loop should wake for it."""
        mask = event.mask
        if Mask.Q_OVERFLOW in mask:
            logger.warning("%s: inotify queue overflow; rescanning", self._directory)
            self._rescan = True
            return True
        seen = self._paths.classify(event)
        if seen is pathwatch.Seen.PATH:
            # A swap, a rename over, a removal or a chmod on the way: walk, list, judge again.
            self._rescan = True
            return True
        if seen is pathwatch.Seen.NOTHING or event.name is None or Mask.ISDIR in mask:
            return False
        name = str(event.name)
        if not is_manifest_name(name):
            return False
        path = str(self._directory / name)
        wake = path not in self._dirty and path not in self._settling
        self._dirty.add(path)
        if mask & _WRITER_DONE:
            self._done.add(path)
            return True
        # A write after a close reopens the file: it must settle again.
        self._done.discard(path)
        return wake

    def _settle_wait(self) -> float | None:
        if not self._pending:
            return None
        now, wall = time.monotonic(), time.time()
        return max(
            _MIN_SLEEP,
            min(self._settle_delay - self._age(p, now, wall) for p in self._pending.values()),
        )

    # --- refresh pass (worker thread) ---------------------------------------------------------

    def _initial_wait(self) -> float:
        return max(1.0, 4 * self._settle_delay)

    def _initial_pass(self, wait: float | None) -> DesiredSet:
        deadline = time.monotonic() + (self._initial_wait() if wait is None else wait)
        delay = self._refresh(full=True, dirty=set(), done=set())
        while delay is not None and time.monotonic() + delay <= deadline:
            time.sleep(delay)
            delay = self._refresh(full=False, dirty=set(), done=set())
        return self._desired

    def _refresh(self, *, full: bool, dirty: set[str], done: set[str]) -> float | None:
        """One pass; returns how long until a pending path may settle (None: nothing pending)."""
        self._lstat = functools.cache(os.lstat)  # directories are walked once per pass
        self._pass_walk = None
        dfd, ident, error = _open_directory(self._directory)
        try:
            return self._refresh_in(dfd, ident, error, full=full, dirty=dirty, done=done)
        finally:
            if self._pass_dfd is not None:
                os.close(self._pass_dfd)
            self._pass_dfd = None

    def _refresh_in(
        self,
        dfd: int | None,
        ident: _Identity | None,
        error: OSError | None,
        *,
        full: bool,
        dirty: set[str],
        done: set[str],
    ) -> float | None:
        self._pass_dfd = dfd  # closed by _refresh, whatever this pass does with it
        before = self._ident
        if full or self._again or not self._resolved or ident != self._ident:
            # A resync, or the path leads elsewhere now: walk (and watch) it, and judge again.
            full = True
            self._resolve()
            if ident != self._ident and self._ident is not None:
                # Swapped between the open and the walk: open what the walk found.
                if dfd is not None:
                    os.close(dfd)
                self._pass_dfd = None
                dfd, ident, error = _open_directory(self._directory)
                self._pass_dfd = dfd
            if ident is None and self._ident is not None and error is not None:
                # A directory that cannot be opened (no permission, an I/O error).
                self._ident, self._unavailable = None, _why_unreadable(self._directory, error)
            elif ident != self._ident:
                self._again = True  # still moving: read nothing that was not judged
                return _MIN_SLEEP
        # A swap: the path leads to another directory than it did, both readable. The swapper
        # made the new one complete before swapping it in, so it is taken whole and at once.
        swapped = before is not None and self._ident is not None and self._ident != before
        names = self._list(dfd) if full and dfd is not None and self._unavailable is None else set()
        if self._unavailable is not None and not self._missing_is_empty:
            # Unavailable is not empty: every entry stays as it was read, so running pods keep
            # running, and nothing settles until the directory is back.
            self._pending.clear()
            if full:
                self._directory_error = self._refusal(str(self._directory))
            self._publish_if_changed(self._build())
            return _MIN_SLEEP if self._again else None
        candidates = set(dirty) | set(self._pending)
        if full:
            candidates |= names | set(self._entries)
            self._judge_again()
        # Small files first; a large one that settled waits (pending) for the next pass, right
        # after this one is published, when anything smaller changed here: a huge or abusive
        # file never holds up the pods of ordinary ones. A swap is taken whole, as it is.
        entries_before = dict(self._entries)
        large = [
            path
            for path in sorted(candidates)
            if self._examine(path, dfd, done=path in done, at_once=swapped, defer_large=True)
        ]
        deferred = False
        if large and (swapped or self._entries == entries_before):
            for path in large:
                self._examine(path, dfd, done=path in done, at_once=swapped)
        elif large:
            deferred = True
            self._deferred_done = {path for path in large if path in done}  # still done writing
        self._settle_moves()
        self._publish_if_changed(self._build())
        return _MIN_SLEEP if self._again or deferred else self._settle_wait()

    def _resolve(self) -> None:
        """Walk the path to the directory, watching what it goes through (pathwatch.py)."""
        walked, settled = self._paths.resolve(str(self._directory))
        self._again = not settled  # it kept changing while we walked: look again at once
        self._resolved = True
        st = walked.st
        if walked.path is None or st is None or not stat.S_ISDIR(st.st_mode):
            self._ident = self._real = None
            self._unavailable = _why_unreadable(self._directory, walked.error)
            return
        if walked.path != self._real and walked.path != os.path.abspath(self._directory):
            # Which directory a symlinked path leads to is what a node runs (git-sync: which
            # commit); say it whenever it changes.
            logger.info("manifest directory %s leads to %s", self._directory, walked.path)
        self._ident, self._real = (st.st_dev, st.st_ino), walked.path
        self._unavailable = None

    def _cannot_watch(self, path: str, problem: str) -> None:
        logger.warning(
            "%s: cannot watch %s (%s); changes there are seen by the resync every %gs",
            self._directory,
            path,
            problem,
            self._resync_period,
        )

    def _list(self, dfd: int) -> set[str]:
        try:
            names = os.listdir(dfd)
        except OSError as exc:
            # Gone (or made unreadable) since the walk: unavailable until it is back.
            self._unavailable = _why_unreadable(self._directory, exc)
            return set()
        directory = str(self._directory)
        return {os.path.join(directory, n) for n in names if is_manifest_name(n)}

    def _refusal(self, path: str) -> ManifestError | None:
        """The trust rules' verdict on ``path`` and every directory on its way (None: trusted)."""
        if self._owners is None:
            return None
        problems = self._file_problems(path, self._owners)
        if problems is None:
            problems = trust.check_path(path, owners=self._owners, lstat=self._lstat)
        return trust.refusal(path, problems, owners=self._owners) if problems else None

    def _file_problems(self, path: str, owners: frozenset[int]) -> list[trust.Problem] | None:
        """``check_path`` for a regular file of the directory this pass reads, without walking
        to the directory once per file: its problems are the directory's (walked once per pass)
        and its own. None where that does not hold (a symlink: its target is walked in full)."""
        if self._pass_dfd is None or os.path.dirname(path) != str(self._directory):
            return None
        name = os.path.basename(path)
        try:
            st = os.stat(name, dir_fd=self._pass_dfd, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if self._pass_walk is None:
            walked = pathwalk.walk(str(self._directory), lstat=self._lstat)
            self._pass_walk = (walked, trust.judge_walk(walked, owners=owners))
        walked, problems = self._pass_walk
        if walked.path is None:
            return None
        own = trust.file_problem(os.path.join(walked.path, name), st, owners=owners)
        return problems if own is None else [*problems, own]

    def _judge_again(self) -> None:
        """The directory and every known file, judged again on a full pass: a chmod or chown up
        the path changes no file's fingerprint, so _examine alone would never see it."""
        self._directory_error = self._refusal(str(self._directory))
        for path, entry in list(self._entries.items()):
            refusal = self._refusal(path)
            if refusal is not None:
                if not entry.refused or _lines(entry.result) != refusal.lines():
                    # Trusted -> refused: the pod goes the way of a bad edit (see reconciler).
                    self._entries[path] = _Entry(entry.fingerprint, None, refusal, refused=True)
            elif entry.refused and entry.fingerprint != _RECHECK:
                # Refused -> trusted: read it afresh. The refusal stays published until then,
                # so that a running pod is not stopped for the moment in between.
                self._entries[path] = _Entry(_RECHECK, None, entry.result, refused=True)

    def _age(self, pending: _Pending, now: float, wall: float) -> float:
        """How long the pending state has provably been unchanged."""
        age = now - pending.since
        if pending.fingerprint is not None:
            ctime = pending.fingerprint[3] / 1e9
            if ctime <= wall:  # a ctime in the future (clock stepped back) proves nothing
                age = max(age, wall - ctime - _CLOCK_SLACK)
        return age

    def _examine(
        self,
        path: str,
        dfd: int | None,
        *,
        done: bool,
        at_once: bool,
        defer_large: bool = False,
    ) -> bool:
        """Bring one path's entry up to date, if its current state has settled (``at_once``:
        taken as settled, present or absent, for a directory swapped in whole). ``dfd``: the
        directory read in this pass (None: there is none, and the path is absent).

        ``defer_large``: a settled file of LARGE_FILE_BYTES or more is left unread (pending)
        and True is returned, so that the caller can read the small files first."""
        fp: _Fingerprint | None
        try:
            if dfd is None:
                raise FileNotFoundError(path)
            st = os.stat(os.path.basename(path), dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            fp = None  # absent (or a dangling symlink)
        except OSError:
            fp = _UNSTATABLE  # e.g. ELOOP: the read reports why
        else:
            fp = None if stat.S_ISDIR(st.st_mode) else _fingerprint(st)

        entry = self._entries.get(path)
        if fp == (entry.fingerprint if entry is not None else None):
            self._pending.pop(path, None)  # unchanged (or absent and unknown)
            return False

        now, wall = time.monotonic(), time.time()
        pending = self._pending.get(path)
        if pending is None or pending.fingerprint != fp:
            pending = _Pending(fp, since=now)
            self._pending[path] = pending
        settled = (
            at_once
            or (done and fp is not None)
            or self._age(pending, now, wall) >= self._settle_delay
        )
        if not settled:
            return False

        if fp is None:
            # Present -> absent, settled: the pod goes with the file.
            self._pending.pop(path, None)
            self._entries.pop(path, None)
            return False

        if defer_large and fp[1] >= LARGE_FILE_BYTES:
            return True
        refusal = self._refusal(path)
        if refusal is not None:
            # Neither read nor parsed: someone other than root may have written these bytes.
            self._pending.pop(path, None)
            self._entries[path] = _Entry(fp, None, refusal, refused=True)
            return False
        outcome = _read_file(path, max_bytes=self._max_bytes, owners=self._owners, dir_fd=dfd)
        if isinstance(outcome, _Absent):
            self._pending[path] = _Pending(None, since=now)
            return False
        if isinstance(outcome, _Changing):
            self._pending[path] = _Pending(outcome.fingerprint, since=time.monotonic())
            return False
        if isinstance(outcome, _Unreadable):
            self._pending.pop(path, None)
            self._entries[path] = _Entry(outcome.fingerprint or fp, None, outcome.error)
            return False
        if isinstance(outcome, _Refused):
            self._pending.pop(path, None)
            self._entries[path] = _Entry(outcome.fingerprint, None, outcome.error, refused=True)
            return False
        if outcome.fingerprint != fp and not (done or at_once):
            # Replaced or rewritten between the settle check and the read: settle that.
            self._pending[path] = _Pending(outcome.fingerprint, since=time.monotonic())
            return False

        self._pending.pop(path, None)
        uid = static_pod_uid(outcome.data, node_name=self._node_name)
        if entry is not None and entry.uid == uid:
            # Same bytes (a touch, a rewrite of the same content): same object, same seen.
            self._entries[path] = _Entry(outcome.fingerprint, uid, entry.result)
            return False
        result = _decode(outcome.data, source=path, uid=uid, node_name=self._node_name)
        self._entries[path] = _Entry(outcome.fingerprint, uid, result)
        return False

    def _settle_moves(self) -> None:
        """A file gone whose bytes live on under another name (``mv a.yaml b.yaml``, or a swap
        that renamed it) is gone at once: the same pod carries on from the other name, so there
        is no flapping to wait out, and the two never count as duplicates."""
        gone = {
            path
            for path, pending in self._pending.items()
            if pending.fingerprint is None and path in self._entries
        }
        if not gone:
            return
        live = {e.uid for p, e in self._entries.items() if e.uid is not None and p not in gone}
        for path in gone:
            if self._entries[path].uid in live:
                del self._pending[path]
                del self._entries[path]

    def _build(self) -> DesiredSet:
        """Entries -> snapshot, resolving duplicate keys (the incumbent keeps its key)."""
        owners = {key: sp.source for key, sp in self._desired.pods.items()}
        candidates = [
            (path, e.result)
            for path, e in sorted(self._entries.items())
            if isinstance(e.result, StaticPod)
        ]
        pods: dict[PodKey, StaticPod] = {}
        for path, sp in candidates:
            if owners.get(sp.key) == path:
                pods[sp.key] = sp
        errors: dict[str, ManifestError] = {}
        for path, sp in candidates:
            holder = pods.get(sp.key)
            if holder is None:
                pods[sp.key] = sp
            elif holder.source != path:
                errors[path] = self._duplicate(path, sp, holder.source)
        for path, e in self._entries.items():
            if isinstance(e.result, ManifestError):
                errors[path] = e.result
        return DesiredSet(
            pods=pods,
            errors=dict(sorted(errors.items())),
            directory_error=self._directory_error,
            unavailable=self._unavailable,
            resolved=self._real,
        )

    def _duplicate(self, path: str, sp: StaticPod, holder: str) -> ManifestError:
        old = self._desired.errors.get(path)
        error = ManifestError(
            path,
            [
                FieldError(
                    ErrorType.DUPLICATE,
                    "metadata.name",
                    f"already declared by {holder}",
                    value=sp.pod.metadata.name,
                )
            ],
        )
        # Keep the published object when nothing changed, like pods.
        return old if old is not None and old.lines() == error.lines() else error

    def _publish_if_changed(self, new: DesiredSet) -> None:
        old = self._desired
        old_errors = {p: e.lines() for p, e in old.errors.items()}
        new_errors = {p: e.lines() for p, e in new.errors.items()}
        old_refused, new_refused = _lines(old.directory_error), _lines(new.directory_error)
        if (
            {k: (v.uid, v.source) for k, v in old.pods.items()}
            == {k: (v.uid, v.source) for k, v in new.pods.items()}
            and old_errors == new_errors
            and old_refused == new_refused
            and old.unavailable == new.unavailable
            and old.resolved == new.resolved
        ):
            return
        if new.unavailable != old.unavailable:
            if new.unavailable is not None:
                logger.warning(
                    "%s; %s",
                    new.unavailable,
                    "it counts as empty"
                    if self._missing_is_empty
                    else "the pods read from it keep running until it is back",
                )
            else:
                logger.info("manifest directory %s is back", self._directory)
        if new_refused != old_refused:
            if new.directory_error is not None:
                logger.warning(
                    "manifest directory %s is not trusted; every manifest in it is refused: %s",
                    self._directory,
                    "; ".join(str(e) for e in new.directory_error.errors),
                )
            else:
                logger.info("manifest directory %s is trusted again", self._directory)
        for key, sp in new.pods.items():
            before = old.pods.get(key)
            if before is not None and before.uid == sp.uid and before.source != sp.source:
                logger.info(
                    "%s: pod %s moved here from %s, unchanged", sp.source, key, before.source
                )
            elif before is None or before.uid != sp.uid:
                verb = (
                    "changed" if before is not None and before.source == sp.source else "declares"
                )
                logger.info("%s: %s pod %s (uid %s)", sp.source, verb, key, sp.uid)
                for warning in sp.warnings:
                    logger.warning("%s: %s", sp.source, warning)
        for key, sp in old.pods.items():
            if key not in new.pods:
                logger.info("%s: pod %s is no longer declared", sp.source, key)
        for path, lines in new_errors.items():
            if old_errors.get(path) != lines:
                logger.warning(
                    "%s: could not process manifest file: %s",
                    path,
                    "; ".join(str(e) for e in new.errors[path].errors),
                )
        for path in old_errors.keys() - new_errors.keys():
            logger.info("%s: no longer in error", path)
        self._desired = new


def _lines(result: StaticPod | ManifestError | None) -> list[str]:
    return result.lines() if isinstance(result, ManifestError) else []
