"""The process runtime's engine report: as root, the host tools it runs (util-linux's unshare,
nsenter and setpriv, mount's mount and umount) are checked when it starts, and what is missing
is reported with the packages to install. A host without them is a directory of tools with only
``sh`` in it (``tool_path``): the runtime looks nowhere else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minikubelet.runtime.engine import EngineReport
from minikubelet.runtime.process import DEFAULT_PATH, ProcessRuntime

pytestmark = pytest.mark.root  # tests/conftest.py skips it, with the reason, unless root


async def test_missing_util_linux_and_mount_are_reported_with_their_packages(
    tmp_path: Path,
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    sh = shutil.which("sh")
    assert sh is not None
    (tools / "sh").symlink_to(sh)
    said: list[str] = []
    report = EngineReport("process", warn=lambda _, problem: said.append(problem))
    async with ProcessRuntime(
        root=tmp_path / "rt", engine_report=report, tool_path=str(tools)
    ) as rt:
        assert not rt.isolated
    assert said == [
        "unshare, nsenter, setpriv, mount, umount not found, so containers get no volume "
        "mounts, no private /tmp and no runAsUser: apt-get install mount util-linux"
    ]
    assert report.health() == ("runtime-process", True, said[0])


async def test_without_setpriv_only_run_as_user_is_lost(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("sh", "unshare", "nsenter", "mount", "umount"):
        found = shutil.which(name, path=DEFAULT_PATH)
        assert found is not None, name
        (tools / name).symlink_to(found)
    report = EngineReport("process")
    async with ProcessRuntime(root=tmp_path / "rt", engine_report=report, tool_path=str(tools)):
        pass
    assert report.problem == (
        "setpriv not found, so containers get no runAsUser: apt-get install util-linux"
    )


async def test_with_its_tools_the_process_runtime_is_ready(tmp_path: Path) -> None:
    said: list[str] = []
    report = EngineReport("process", warn=lambda _, problem: said.append(problem))
    async with ProcessRuntime(root=tmp_path / "rt", engine_report=report) as rt:
        assert rt.isolated
    assert said == []
    assert report.health() == ("runtime-process", True, "")
