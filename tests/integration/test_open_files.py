"""The daemon's open-files limit: raised toward the hard limit at start, and the API's share."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minikubelet.daemon import api_connection_limit

PROBE = (
    "import resource, sys\n"
    "from minikubelet.daemon import raise_open_files_limit\n"
    "print(raise_open_files_limit(int(sys.argv[1])), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
)


def limits_after_raise(soft: int, hard: int, target: int) -> list[int]:
    """Run raise_open_files_limit(target) in a child started with nofile soft:hard (a hard
    limit below ours: raising one needs a capability containers often lack)."""
    out = subprocess.run(
        ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-c", PROBE, str(target)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(word) for word in out.split()]


@pytest.mark.parametrize(
    ("soft", "hard", "target", "expected"),
    [
        (512, 4096, 65536, [4096, 4096, 4096]),  # up to the hard limit
        (512, 4096, 2048, [2048, 2048, 4096]),  # but no further than the target
        (3000, 4096, 2048, [3000, 3000, 4096]),  # never lowered
        (1024, 1024, 65536, [1024, 1024, 1024]),  # nothing to raise
    ],
)
def test_the_soft_open_files_limit_is_raised_toward_the_hard_one(
    soft: int, hard: int, target: int, expected: list[int]
) -> None:
    assert limits_after_raise(soft, hard, target) == expected


def test_the_api_gets_a_quarter_of_the_open_files_limit_at_most() -> None:
    assert api_connection_limit(1000, 1024) == 256
    assert api_connection_limit(1000, 65536) == 1000
    assert api_connection_limit(100, 65536) == 100
    assert api_connection_limit(1000, 16) == 8  # never fewer than 8
