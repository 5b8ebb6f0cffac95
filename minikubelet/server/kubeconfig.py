"""The kubeconfig that lets real kubectl talk to this node: server, token, CA.

The daemon writes it at every start to ``<state dir>/kubeconfig`` (0600, like the token it
holds), with the address it actually serves on: ``https://`` and the CA's certificate
(``certificate-authority-data``) under TLS, and, when it listens on every address, the node's
primary address. ``minikubelet kubeconfig`` prints it (``--server`` replaces the address, for a
name the certificate holds through ``api.tlsSANs``). One cluster, one user and one context,
all named after the node, and the context is current: ``KUBECONFIG=that-file kubectl get pods``
just works, and ``kubectl config view --flatten`` merges it with others.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

KUBECONFIG_FILE = "kubeconfig"  # under the state dir


def kubeconfig(*, server: str, token: str, node_name: str, ca_pem: bytes | None) -> dict[str, Any]:
    name = f"minikubelet-{node_name}"
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"},
            }
        ],
        "current-context": name,
        "preferences": {},
    }


def render(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def with_server(text: str, server: str) -> str:
    """The kubeconfig ``text`` pointing at ``server`` instead."""
    config = yaml.safe_load(text)
    for cluster in config.get("clusters") or []:
        cluster["cluster"]["server"] = server
    return render(config)
