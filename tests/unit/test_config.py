"""The config file: every key is one minikubelet reads, or an error naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minikubelet.config import ConfigError, DaemonConfig, load_config_file

BASE = DaemonConfig(manifests=Path("m"), state_dir=Path("s"), node_name="n")


def _load(tmp_path: Path, text: str) -> DaemonConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config_file(path, BASE)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("podman:\n  sockt: /run/podman.sock\n", "podman.sockt"),
        ("probes:\n  period: 3s\n", "probes.period"),
        ("containerd:\n  socket: /run/c.sock\n", "containerd.socket"),
        ("node:\n  name: x\n", "node.name"),
        ("cgroups:\n  pidLimit: 10\n", "cgroups.pidLimit"),
        ("fileCheckFrequncy: 5s\n", "fileCheckFrequncy"),
    ],
)
def test_an_unknown_key_is_an_error_naming_the_file_and_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}: {key}: unknown setting")


def test_an_unknown_key_close_to_a_real_one_suggests_it(tmp_path):
    with pytest.raises(
        ConfigError, match=re.escape('podman.sockt: unknown setting, did you mean "podmanSocket"')
    ):
        _load(tmp_path, "podman: {sockt: /x}\n")
    with pytest.raises(ConfigError, match=re.escape('did you mean "cgroups.pidsLimit"')):
        _load(tmp_path, "cgroups: {pidLimit: 10}\n")


def test_cgroups_keys_are_passed_on_for_the_daemon(tmp_path):
    cfg = _load(tmp_path, "cgroups: {enabled: false, pidsLimit: 100}\nnodeName: lab\n")
    assert cfg.extra == {"cgroups.enabled": False, "cgroups.pidsLimit": 100}
    assert cfg.node_name == "lab"


@pytest.mark.parametrize("value", [".inf", ".nan", "-1s"])
def test_a_duration_must_be_finite_and_not_negative(tmp_path, value):
    with pytest.raises(ConfigError, match="fileCheckFrequency: Invalid value"):
        _load(tmp_path, f"fileCheckFrequency: {value}\n")
