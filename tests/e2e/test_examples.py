"""The README's tour: every example in manifests/ runs under the process runtime, as documented."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from tests.e2e.harness import EXAMPLES_DIR, Daemon


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_text(url: str) -> str:
    """The body of a 200 answer; "" for any other (the file may not be written yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        exc.close()
        return ""


@pytest.mark.root
def test_readme_examples_run_as_documented(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    names = sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))
    assert names == ["adapter", "crashloop", "env", "exec-liveness", "init-containers", "sidecar"]
    ports_free = port_is_free(8080) and port_is_free(8081)
    for name in names:
        d.copy_example(name)

    for pod in ("init-demo", "env-demo", "sidecar", "adapter"):
        d.wait_for_phase(pod, "Running", timeout=30)

    # Init containers ran in order and the app read what they wrote.
    log = d.wait_for(lambda: (t := d.logs("init-demo", "app")) and "greeting=" in t and t)
    assert log.index("1. write-config") < log.index("2. check-config")
    assert "greeting=hello from the init containers" in log

    # $(VAR) expansion and the downward API.
    env = d.wait_for(lambda: (t := d.logs("env-demo", "printer")) and "escaped" in t and t)
    uid = d.pod("env-demo")["metadata"]["uid"]
    assert f"pod:       default/env-demo-testnode (uid {uid})" in env
    assert "memory:    limit 64Mi" in env
    assert "greeting:  hello from env-demo-testnode on testnode" in env
    assert "escaped:   $(POD_NAME) stays literal" in env

    # The crash loop is visible as kubelet shows it.
    d.wait_for(lambda: d.container_status("crashloop", "flaky")["restartCount"] >= 1, timeout=20)
    d.wait_for(lambda: "BackOff" in d.event_reasons("crashloop"), timeout=20)
    assert "something went wrong" in d.wait_for(
        lambda: d.logs("crashloop", "flaky", previous=True), timeout=20
    )

    if ports_free:  # the sidecar and the adapter serve fixed ports, as the README says
        assert d.wait_for(lambda: http_text("http://127.0.0.1:8080/app.log"), timeout=20)
        status = d.wait_for(lambda: http_text("http://127.0.0.1:8081/status.html"), timeout=20)
        assert status.startswith("<pre>")

    listing = d.cli("get", "pods", check=True).stdout
    for pod in ("adapter", "crashloop", "env-demo", "exec-liveness", "init-demo", "sidecar"):
        assert f"{pod}-testnode" in listing
    # The seed's exec liveness example runs (its 36 s timeline is tested in test_seed_probes).
    assert d.pod("exec-liveness")["status"]["phase"] == "Running"
