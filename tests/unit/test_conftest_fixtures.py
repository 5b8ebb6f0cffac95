"""The autouse guards in tests/conftest.py catch what they promise to catch.

Each case runs a small test file in a separate pytest process (pytester) with the project's
conftest, and reads the outcome: a leak shows up as an error in the test's teardown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).parents[1] / "conftest.py"

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 60
filterwarnings = error
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini(INI)
    return pytester


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=90)


def test_leaked_subprocess_fails_the_test_and_is_killed(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import subprocess

KEEP = []  # keeps the Popen alive: its ResourceWarning would fail the test on its own

def test_leaks():
    proc = subprocess.Popen(["sleep", "30"])
    KEEP.append(proc)
    with open("leaked.pid", "w") as f:
        f.write(str(proc.pid))
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*left 1 child process(es) behind*", "*sleep 30*"])
    pid = int((inner.path / "leaked.pid").read_text())
    assert not Path(f"/proc/{pid}").exists(), "the guard must kill what it finds"


def test_subprocess_that_is_waited_for_is_fine(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import asyncio
import subprocess

def test_sync():
    subprocess.run(["true"], check=True)

async def test_async():
    proc = await asyncio.create_subprocess_exec("sleep", "0.1")
    assert await proc.wait() == 0
""",
    )
    result.assert_outcomes(passed=2)


def test_leaked_asyncio_task_fails_the_test(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import asyncio

async def test_leaks_task():
    asyncio.create_task(asyncio.sleep(30), name="forgotten sleeper")
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*left 1 asyncio task(s) pending*", "*forgotten sleeper*"])


def test_leaked_task_in_a_module_scoped_loop_is_caught(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import asyncio
import pytest

@pytest.mark.asyncio(loop_scope="module")
async def test_leaks_task():
    asyncio.create_task(asyncio.sleep(30), name="module-loop sleeper")
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*module-loop sleeper*"])


def test_awaited_and_cancelled_tasks_are_fine(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import asyncio
import pytest

@pytest.fixture
async def server_task():
    task = asyncio.create_task(asyncio.sleep(30), name="fixture-owned")
    yield task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

async def test_awaits(server_task):
    await asyncio.create_task(asyncio.sleep(0.01))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(asyncio.sleep(0.01))

async def test_cancels_at_the_end():
    task = asyncio.create_task(asyncio.sleep(30))
    await asyncio.sleep(0)
    task.cancel()

def test_sync_test_is_not_guarded():
    assert asyncio.run(asyncio.sleep(0, result=1)) == 1
""",
    )
    result.assert_outcomes(passed=3)


def test_root_marker_and_fixture_skip_with_a_reason_unless_root(inner: pytest.Pytester) -> None:
    result = run(
        inner,
        """
import os
import pytest

@pytest.mark.root
def test_marked():
    assert os.geteuid() == 0

def test_fixture(require_root):
    assert os.geteuid() == 0
""",
    )
    if os.geteuid() == 0:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(skipped=2)
        result.stdout.fnmatch_lines(["*needs root*"])
