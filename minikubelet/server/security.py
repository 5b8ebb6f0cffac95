"""The API's credentials at start: the token, TLS, and the kubeconfig to hand out.

``prepare`` runs before the API listens. It loads (or makes) the token and, unless
``api.tls`` is false, makes or renews the certificates. TLS is on by default even on loopback:
kubectl (client-go's kubeconfig loader) sends a kubeconfig's token only over TLS, so without
it real kubectl cannot authenticate at all. ``api.tls: false`` serves plain HTTP for clients
such as curl and scripts, and only on a loopback address: anywhere else the token would cross
the network in clear, so that is refused. ``write_kubeconfig`` runs once the port is known.
Every refusal is a ``SecurityError`` whose message says what to change; the daemon stops with
it before any pod starts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from minikubelet.server.auth import load_or_create_token
from minikubelet.server.kubeconfig import KUBECONFIG_FILE, kubeconfig, render
from minikubelet.server.listener import tls_context
from minikubelet.server.private_files import PrivateFileError, write_private
from minikubelet.server.tls import TlsFiles, ensure_tls, is_loopback, is_wildcard, serving_names


class SecurityError(Exception):
    """The API cannot be served safely as configured; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ApiSecurity:
    token: str
    tls: ssl.SSLContext | None  # None: plain HTTP (loopback only)
    tls_files: TlsFiles | None


def prepare(
    state_dir: Path,
    *,
    listen_host: str,
    node_name: str,
    tls: bool,
    tls_sans: tuple[str, ...] = (),
) -> ApiSecurity:
    try:
        token = load_or_create_token(state_dir)
    except PrivateFileError as exc:
        raise SecurityError(str(exc)) from exc
    if not tls:
        if not is_loopback(listen_host):
            raise SecurityError(
                f"--listen {listen_host}: an address beyond loopback is served over TLS only "
                "(the token would cross the network in clear); remove api.tls: false, or "
                "listen on 127.0.0.1"
            )
        return ApiSecurity(token=token, tls=None, tls_files=None)
    names = serving_names(listen_host=listen_host, node_name=node_name, extra=tls_sans)
    try:
        files = ensure_tls(state_dir, node_name=node_name, names=names)
        context = tls_context(str(files.cert), str(files.key))
    except (PrivateFileError, OSError, ValueError, ssl.SSLError) as exc:
        raise SecurityError(f"TLS: {exc}") from exc
    return ApiSecurity(token=token, tls=context, tls_files=files)


def server_url(*, listen_host: str, port: int, secure: bool, node_ip: str) -> str:
    """The address clients use: the node's primary address when listening on all of them."""
    host = node_ip if is_wildcard(listen_host) else listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if secure else 'http'}://{host}:{port}"


def write_kubeconfig(
    state_dir: Path, security: ApiSecurity, *, server: str, node_name: str
) -> Path:
    ca = security.tls_files.ca_pem() if security.tls_files is not None else None
    config = kubeconfig(server=server, token=security.token, node_name=node_name, ca_pem=ca)
    path = state_dir / KUBECONFIG_FILE
    write_private(path, render(config).encode())
    return path
