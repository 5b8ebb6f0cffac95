"""The API lets no one in without the token: 401s, no env values, files only root can read,
TLS that kubectl verifies with the node's own CA, and no plain HTTP beyond loopback."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from minikubelet.server.tls import ensure_tls
from tests.e2e.conftest import DaemonFactory
from tests.e2e.harness import Daemon, free_port
from tests.e2e.kubectl import Kubectl, needs_kubectl
from tests.e2e.pods import container, pod_yaml

SECRET = "hunter2-" + "x" * 8
SECRET_POD = pod_yaml(
    "secret",
    [container("app", "exec sleep 600", env=[{"name": "DB_PASSWORD", "value": SECRET}])],
)
PROTECTED = [
    "/pods",
    "/events",
    "/containerLogs/default/secret-testnode/app",
    "/api",
    "/api/v1",
    "/api/v1/pods",
    "/api/v1/namespaces/default/pods/secret-testnode",
    "/api/v1/namespaces/default/pods/secret-testnode/log",
    "/api/v1/nodes",
    "/apis",
    "/version",
    "/openapi/v3",
    "/metrics",
    "/no/such/path",
]


def test_every_endpoint_but_healthz_is_401_without_the_token_and_no_env_leaks(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("secret", SECRET_POD)
    d.wait_for_phase("secret", "Running")
    assert SECRET in json.dumps(d.pods())  # the token opens it

    for path in PROTECTED:
        for token in (None, "not-the-token", d.token() + "x"):  # type: ignore[operator]
            status, body = d.request(path, token=token)
            assert status == 401, (path, token, body)
            assert SECRET not in body
            assert json.loads(body) == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            }
    status, body = d.request(
        "/api/v1/pods", headers={"Authorization": f"Basic {d.token()}"}, token=None
    )
    assert status == 401
    assert d.request("/healthz", token=None) == (200, "ok")
    assert d.request("/healthz?verbose", token=None)[0] == 200
    assert "API: refused GET" in d.log_text()


def test_the_token_kubeconfig_and_keys_are_private_and_kept_across_restarts(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    token = d.token()
    assert token is not None and len(token) >= 32
    for path in (
        d.token_path,
        d.kubeconfig_path,
        d.state_dir / "pki/ca.key",
        d.state_dir / "pki/serving.key",
    ):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, path
        assert st.st_uid == os.geteuid()
    config = yaml.safe_load(d.kubeconfig_path.read_text())
    assert config["users"][0]["user"]["token"] == token
    assert config["clusters"][0]["cluster"]["server"] == d.url
    ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
    assert ca

    d.restart()
    assert d.token() == token
    assert (
        yaml.safe_load(d.kubeconfig_path.read_text())["clusters"][0]["cluster"][
            "certificate-authority-data"
        ]
        == ca
    )

    printed = d.cli("kubeconfig", "--state-dir", str(d.state_dir), check=True).stdout
    assert yaml.safe_load(printed) == config
    moved = d.cli(
        "kubeconfig",
        "--state-dir",
        str(d.state_dir),
        "--server",
        "https://edge.example:1",
        check=True,
    ).stdout
    assert yaml.safe_load(moved)["clusters"][0]["cluster"]["server"] == "https://edge.example:1"


def test_a_token_file_others_can_read_stops_the_daemon_before_any_pod(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    d.token_path.write_text("t" * 40 + "\n")
    d.token_path.chmod(0o644)
    d.write_manifest("secret", SECRET_POD)
    with pytest.raises(AssertionError, match="did not become healthy"):
        d.start()
    assert "may have leaked" in d.log_text()
    assert not (d.state_dir / "process").exists() or not any(
        (d.state_dir / "process").rglob("*.log")
    )


def test_the_cli_uses_the_state_dir_token_else_flag_or_environment(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    assert d.cli("get", "pods", check=True).returncode == 0  # MINIKUBELET_STATE_DIR
    elsewhere = {"MINIKUBELET_STATE_DIR": str(d.workdir / "empty")}
    (d.workdir / "empty").mkdir()
    ca = str(d.state_dir / "pki" / "ca.crt")
    # Without the state dir: no token, and the server's certificate is not trusted either.
    refused = d.cli("get", "pods", env=elsewhere | {"SSL_CERT_FILE": ca})
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: You must be logged in to the server (Unauthorized)")
    by_env = d.cli(
        "get", "pods", env=elsewhere | {"SSL_CERT_FILE": ca, "MINIKUBELET_TOKEN": d.token() or ""}
    )
    assert by_env.returncode == 0, by_env.stderr
    by_flag = d.cli(
        "get", "pods", "--token", d.token() or "", env=elsewhere | {"SSL_CERT_FILE": ca}
    )
    assert by_flag.returncode == 0, by_flag.stderr
    wrong = d.cli("get", "pods", "--token", "wrong")
    assert wrong.returncode == 1 and "Unauthorized" in wrong.stderr


def test_the_body_limit_and_the_write_switch(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    big = b"x" * (3 * 1024 * 1024 + 1)
    status, body = d.request(
        "/api/v1/namespaces/default/pods",
        method="POST",
        data=big,
        headers={"Content-Type": "application/json"},
    )
    assert (status, json.loads(body)["reason"]) == (413, "RequestEntityTooLarge")
    status, body = d.request(
        "/api/v1/namespaces/default/pods",
        method="POST",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert (status, json.loads(body)["reason"]) == (403, "Forbidden")
    assert "api.writes is false" in json.loads(body)["message"]
    assert "audit: admin@127.0.0.1 create pods in namespace default: denied" in d.log_text()
    status, _ = d.request("/api/v1/namespaces/default/pods", method="POST", data=big, token=None)
    assert status == 401  # who you are comes first


def test_plain_http_beyond_loopback_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("api:\n  tls: false\n")
    (tmp_path / "m").mkdir()
    result = subprocess.run(
        [
            sys.executable, "-m", "minikubelet", "run",
            "--manifests", str(tmp_path / "m"), "--state-dir", str(tmp_path / "s"),
            "--listen", f"0.0.0.0:{free_port()}", "--config", str(config),
        ],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    assert "an address beyond loopback is served over TLS only" in result.stderr
    assert not (tmp_path / "s" / "process").exists()  # no pod machinery was started


def test_plain_http_on_loopback_still_needs_the_token(daemon_factory: DaemonFactory) -> None:
    d = daemon_factory(config={"api": {"tls": False}})
    assert d.url.startswith("http://")
    assert not (d.state_dir / "pki").exists()
    assert d.request("/api/v1/pods", token=None)[0] == 401
    assert d.request("/api/v1/pods")[0] == 200


@needs_kubectl
def test_kubectl_verifies_the_generated_ca_on_a_non_loopback_listen(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    d = daemon_factory(listen_host="0.0.0.0")
    config = yaml.safe_load(d.kubeconfig_path.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://") and server.endswith(f":{d.port}")
    cert = x509.load_pem_x509_certificate((d.state_dir / "pki/serving.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert server.removeprefix("https://").rsplit(":", 1)[0].strip("[]") in ips
    assert "127.0.0.1" in ips
    assert "localhost" in sans.get_values_for_type(x509.DNSName)

    # The test talks to loopback only: the same kubeconfig, pointed at 127.0.0.1.
    local = tmp_path / "local.kubeconfig"
    local.write_text(
        d.cli("kubeconfig", "--state-dir", str(d.state_dir), "--server", d.url, check=True).stdout
    )
    kubectl = Kubectl(d, tmp_path / "home", kubeconfig=local)
    assert kubectl("get", "nodes").splitlines()[1].split()[:2] == [d.node_name, "Ready"]

    # Another CA in the kubeconfig: kubectl refuses the server's certificate.
    other = Daemon(tmp_path / "other")
    other.state_dir.mkdir(parents=True, exist_ok=True)
    files = ensure_tls(other.state_dir, node_name="other", names=["localhost", "127.0.0.1"])
    forged = yaml.safe_load(local.read_text())
    forged["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        files.ca_pem()
    ).decode()
    (tmp_path / "forged.kubeconfig").write_text(yaml.safe_dump(forged))
    refused = Kubectl(d, tmp_path / "home2", kubeconfig=tmp_path / "forged.kubeconfig").run(
        "get", "pods", check=False
    )
    assert refused.returncode == 1
    assert "certificate signed by unknown authority" in refused.stderr
