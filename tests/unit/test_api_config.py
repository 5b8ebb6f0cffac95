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


def test_api_security_keys_default_to_read_only_over_tls(tmp_path: Path) -> None:
    assert (BASE.api_writes, BASE.api_tls, BASE.api_tls_sans, BASE.api_max_watches_per_client) == (
        False,
        True,
        (),
        100,
    )
    cfg = load(
        tmp_path,
        "api:\n  writes: true\n  tls: false\n  tlsSANs: [edge1.example, 10.1.2.3]\n"
        "  maxWatchesPerClient: 7\n",
    )
    assert (cfg.api_writes, cfg.api_tls, cfg.api_tls_sans, cfg.api_max_watches_per_client) == (
        True,
        False,
        ("edge1.example", "10.1.2.3"),
        7,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api: {writes: yes please}", "api.writes: Invalid value: 'yes please': must be true"),
        ("api: {tls: auto}", "api.tls: Invalid value: 'auto': must be true or false"),
        ("api: {tlsSANs: edge1}", "api.tlsSANs: Invalid value: 'edge1': must be a list"),
    ],
)
def test_bad_api_security_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)
