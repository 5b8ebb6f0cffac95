"""How a container's first process enters its cgroup before the user's command runs.

The issue's rule is that no container process runs outside its cgroup, even for an instant.
Linux offers two ways: ``clone3(CLONE_INTO_CGROUP)`` (5.7+), which Python 3.11's subprocess and
posix_spawn cannot reach, and a process writing its own pid into ``cgroup.procs`` before it
execs. We use the second, through the smallest launcher there is: ``/bin/sh`` writes ``$$``
(its own pid) into the cgroup, and only if that worked does it ``exec`` the command, which
then keeps the pid, the cgroup and every child it forks. Nothing runs between fork and the
write except the shell itself, which is ours.

    /bin/sh -c 'echo $$ > "$0" || exit 128; exec "$@"' <cgroup.procs> <argv...>

The path travels as ``$0`` and the command as ``"$@"``, so nothing is re-quoted or re-split.
If the write fails (cgroup removed meanwhile, no permission) the command never runs and the
launcher exits 128, kubelet's exit code for StartError, with the shell's message on stderr.

Put the launcher outermost: ``enter_argv(cg.procs_path, ["bwrap", ..., "--", *cmd])`` makes
bwrap and everything it starts members of the cgroup. It costs one extra exec of /bin/sh
(about a millisecond), measured by ``bench/cgroup_overhead.py``.

``oom_score_adj`` (kubelet's per-QoS value) is written the same way, before exec. Raising it
always works; lowering it (Guaranteed, -997) needs CAP_SYS_RESOURCE and is refused on some hosts
(containerd's ``restrict_oom_score_adj``), in which case the process keeps the daemon's value:
the score is advice to the kernel's global OOM killer, while limits are what cgroups enforce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SHELL = "/bin/sh"
START_ERROR_EXIT = 128  # the launcher's exit code when it could not enter the cgroup


def enter_argv(
    procs_path: Path, argv: Sequence[str], *, oom_score_adj: int | None = None
) -> list[str]:
    """argv that runs ``argv`` inside the cgroup whose ``cgroup.procs`` is ``procs_path``."""
    if not argv:
        raise ValueError("enter_argv needs a command to run")
    script = f'echo $$ > "$0" || exit {START_ERROR_EXIT}; '
    if oom_score_adj is not None:
        script += f"echo {int(oom_score_adj)} > /proc/$$/oom_score_adj 2>/dev/null; "
    script += 'exec "$@"'
    return [SHELL, "-c", script, str(procs_path), *argv]
