"""The api.* keys of the daemon's config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from minikubelet.config import ConfigError, DaemonConfig, load_config_file

BASE = DaemonConfig(manifests=Path("/m"), state_dir=Path("/s"), node_name="n")


def load(tmp_path: Path, text: str) -> DaemonConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config_file(path, BASE)


def test_api_limits_default_and_can_be_set(tmp_path: Path) -> None:
    assert (BASE.api_max_connections, BASE.api_idle_timeout, BASE.api_max_follows_per_client) == (
        1000,
        60.0,
        100,
    )
    cfg = load(
        tmp_path, "api:\n  maxConnections: 50\n  idleTimeout: 1m30s\n  maxFollowsPerClient: 4\n"
    )
    assert (cfg.api_max_connections, cfg.api_idle_timeout, cfg.api_max_follows_per_client) == (
        50,
        90.0,
        4,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api: {maxConnections: 0}", "api.maxConnections: Invalid value: 0: must be a positive"),
        ("api: {idleTimeout: 0s}", "api.idleTimeout: Invalid value: '0s': must be greater than 0"),
        ("api: {maxFollows: 3}", "api.maxFollows: unknown setting"),
    ],
)
def test_bad_api_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)
