"""Fuzzed manifests against a running daemon: it stays up, and says what is wrong where.

Batches of manifests generated from the Pod schema (tests/manifest_strategies.py, safe mode:
only harmless commands, paths under the daemon's directory) land in the manifests directory
together. Every file must end up as a pod in ``/pods`` or as a FailedValidation event naming
it, the daemon must stay healthy, its log must hold no traceback, and every rejection it logs
must name the file and a field path. Hypothesis draws the batches with a fixed sequence
(``derandomize``); there is no shrinking, the failing batch is in the report.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from minikubelet.api.identity import CONFIG_FILE
from tests.e2e.harness import Daemon, write_atomically
from tests.manifest_strategies import manifest_batch

BATCHES = int(os.environ.get("FUZZ_BATCHES", 6))
BATCH_SIZE = 50
SOAK = 5.0  # seconds the pods of every batch run on before the daemon's log is checked again
ROOT = "/ROOT-OF-THE-FUZZ"  # replaced by a directory of the daemon's in the files written

# An error with no field path is only allowed for problems with the file as a whole, and for
# top-level keys (unknown, or holding a NUL), which the message names.
WHOLE_FILE = re.compile(
    r"(Too long: may not be more than \d+ bytes|Invalid value: error parsing YAML: "
    r"|Too many: \d+ more errors not shown|unknown field \"|Invalid value: .*: a key must not)"
)
ERROR_TYPES = (
    "Not found",
    "Required value",
    "Duplicate value",
    "Invalid value",
    "Unsupported value",
    "Forbidden",
    "Too long",
    "Too many",
)


class Tally:
    """What the whole run saw, for the report."""

    def __init__(self) -> None:
        self.files = 0
        self.pods = 0
        self.rejected = 0
        self.batch = 0


def _settle(d: Daemon, paths: list[Path], timeout: float = 25.0) -> tuple[set[str], set[str]]:
    """(files that became pods, files refused) once every path is one or the other."""
    wanted = {str(p) for p in paths}
    deadline = time.monotonic() + timeout
    while True:
        pods = {(pod["metadata"].get("annotations") or {}).get(CONFIG_FILE) for pod in d.pods()}
        refused = {
            path
            for event in d.events()
            if event["reason"] == "FailedValidation"
            for path in wanted
            if f"from {path}: " in event["message"]
        }
        ran = wanted & {p for p in pods if p}
        if ran | refused >= wanted or time.monotonic() > deadline:
            missing = wanted - ran - refused
            assert not missing, f"never a pod nor refused: {sorted(missing)}\n{d.log_tail()}"
            return ran, refused
        time.sleep(0.2)


def _check_log(d: Daemon, paths: set[str]) -> int:
    """Every logged rejection names one of ``paths`` and a field path; no traceback anywhere.
    Returns the number of rejection lines."""
    log = d.log_text()
    assert "Traceback" not in log, d.log_tail(120)
    count = 0
    for line in log.splitlines():
        _, marker, rest = line.partition("Could not process manifest file: ")
        if not marker:
            continue
        source = next((p for p in paths if rest.startswith(f"{p}: ")), None)
        if source is None:
            continue  # a file of an earlier batch, checked then
        count += 1
        error = rest.removeprefix(f"{source}: ")
        has_path = not error.startswith(ERROR_TYPES) and not error.startswith("unknown field")
        assert has_path or WHOLE_FILE.match(error), line
    return count


@pytest.fixture
def fuzz_daemon(daemon_factory: Any) -> Iterator[tuple[Daemon, Tally]]:
    """One daemon for every batch (hypothesis runs the test once per batch)."""
    tally = Tally()
    d = daemon_factory()
    (d.workdir / "fuzz").mkdir()
    yield d, tally
    time.sleep(SOAK)  # restarts, probes and hooks of the pods that run
    assert d.running, d.log_tail()
    _check_log(d, set())
    print(
        f"fuzz: {tally.files} manifests in {tally.batch} batches: {tally.pods} pods, "
        f"{tally.rejected} refused; daemon exits 0, tracebacks 0"
    )


@settings(
    max_examples=BATCHES,
    derandomize=True,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_fuzzed_manifests_never_stop_the_daemon_and_every_rejection_names_a_field(
    fuzz_daemon: tuple[Daemon, Tally], seed: int
) -> None:
    d, tally = fuzz_daemon
    batch = manifest_batch(seed, BATCH_SIZE, safe=True, root=ROOT)
    tally.batch += 1
    root = d.workdir / "fuzz"
    paths = []
    for i, raw in enumerate(batch):
        text = raw.decode().replace(ROOT, str(root))
        suffix = "json" if text.lstrip().startswith("{") else "yaml"
        paths.append(write_atomically(d.manifests_dir / f"b{tally.batch}-{i}.{suffix}", text))
    ran, refused = _settle(d, paths)
    assert d.running, d.log_tail()
    assert d.get("/healthz") == "ok"
    logged = _check_log(d, {str(p) for p in paths})
    assert logged >= len(refused)
    tally.files += len(paths)
    tally.pods += len(ran)
    tally.rejected += len(refused)
    print(
        f"batch {tally.batch}: {len(paths)} files, {len(ran)} pods, {len(refused)} refused "
        f"({logged} errors logged); daemon up, 0 tracebacks"
    )
