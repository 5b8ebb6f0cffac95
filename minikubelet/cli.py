"""The ``minikubelet`` command: argument parsing, logging, and wiring; no pod logic.

``run`` builds a DaemonConfig (defaults, then ``--config``, then flags) and runs the daemon. The
client commands (``get``, ``describe``, ``logs``) read the HTTP API with urllib and print what
``minikubelet.printers`` makes of it; ``validate`` and ``create`` work on manifest files offline;
``kubeconfig`` prints the kubeconfig the daemon wrote for real kubectl.

A client command finds everything in the daemon's state dir when it can read it (as root, or
with ``--state-dir``): the server address (from ``kubeconfig``), the token (``token``) and the
CA that signed the API's certificate (``pki/ca.crt``). ``--server``/``$MINIKUBELET_SERVER`` and
``--token``/``$MINIKUBELET_TOKEN`` take precedence over those files; ``--state-dir`` or
``$MINIKUBELET_STATE_DIR`` names the state dir when it is not the default.

Client paths must start fast: nothing here imports aiohttp or the daemon stack at module level.
The daemon, the manifest loader, pydantic models and yaml are imported inside the handlers that
need them.

Errors are printed the way kubectl prints them (``Error from server (NotFound): pods "x" not
found``, ``error: ...``) and exit 1; usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from http.client import HTTPResponse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import JsonValue

    from minikubelet.api.model import Event, PodView
    from minikubelet.config import DaemonConfig

log = logging.getLogger("minikubelet")

DEFAULT_SERVER = "https://127.0.0.1:10255"
SERVER_ENV = "MINIKUBELET_SERVER"
TOKEN_ENV = "MINIKUBELET_TOKEN"
STATE_DIR_ENV = "MINIKUBELET_STATE_DIR"
TOKEN_FILE = "token"  # under the state dir (server/auth.py writes it)
CA_FILE = "pki/ca.crt"  # under the state dir (server/tls.py writes it)
KUBECONFIG_FILE = "kubeconfig"  # under the state dir (server/kubeconfig.py writes it)
REQUEST_TIMEOUT = 30.0
POD_RESOURCES = ("pods", "pod", "po")
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"  # kubectl logs honours it


class CommandError(Exception):
    """A failure to report on stderr as is, exiting 1 (kubectl's ``error: ...`` lines)."""


# --- HTTP client ------------------------------------------------------------------------------


class Client:
    """A tiny client for the read-only API; every failure becomes a kubectl-worded CommandError.

    Every request carries ``token`` (when there is one) as a bearer token; an ``https`` server
    is verified against ``ca_file`` (the node's own CA) when given."""

    def __init__(
        self, base_url: str, *, token: str | None = None, ca_file: Path | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CommandError(f'error: invalid server URL "{base_url}"')
        self.netloc = parsed.netloc
        self.token = token
        self._context = None
        if parsed.scheme == "https" and ca_file is not None:
            import ssl

            self._context = ssl.create_default_context(cafile=str(ca_file))

    def open(
        self, path: str, query: dict[str, str] | None = None, *, timeout: float | None
    ) -> HTTPResponse:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            response: HTTPResponse = urllib.request.urlopen(
                request, timeout=timeout, context=self._context
            )
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                exc.close()
                raise CommandError(_unauthorized(self.token)) from None
            raise CommandError(_server_error(exc)) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                raise CommandError(
                    f"The connection to the server {self.netloc} was refused - "
                    "is minikubelet running?"
                ) from None
            raise CommandError(f"Unable to connect to the server: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise CommandError(f"Unable to connect to the server: {exc}") from None
        return response

    def get_json(self, path: str, query: dict[str, str] | None = None) -> JsonValue:
        with self.open(path, query, timeout=REQUEST_TIMEOUT) as response:
            try:
                payload: JsonValue = json.loads(response.read())
            except (ValueError, OSError) as exc:
                raise CommandError(f"error: reading {path} from the server: {exc}") from None
        return payload


def _server_error(exc: urllib.error.HTTPError) -> str:
    """``Error from server (Reason): message`` from a v1 Status body, as kubectl prints it."""
    try:
        body = exc.read()
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return f"Error from server ({status.get('reason', 'Unknown')}): {status.get('message')}"
        text = body.decode(errors="replace").strip()
    except (ValueError, OSError):
        text = ""
    return f"Error from server: the server responded with the status code {exc.code}: {text}"


def _unauthorized(token: str | None) -> str:
    message = "error: You must be logged in to the server (Unauthorized)"
    if token is None:
        message += (
            f"\nhint: no token: the daemon keeps it in <state dir>/{TOKEN_FILE} (root only); "
            f"run as root, or pass --token or ${TOKEN_ENV}"
        )
    return message


def _state_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "state_dir", None) or os.environ.get(STATE_DIR_ENV)
    if given:
        return Path(given)
    from minikubelet.config import default_paths

    return default_paths()[1]


def _token(args: argparse.Namespace) -> str | None:
    """--token, else $MINIKUBELET_TOKEN, else the daemon's token file when readable."""
    given = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    if given:
        return str(given).strip()
    try:
        return (_state_dir(args) / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def _kubeconfig_server(state_dir: Path) -> str | None:
    """The address the daemon wrote into its kubeconfig, when this user can read it."""
    try:
        text = (state_dir / KUBECONFIG_FILE).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "server" and value.strip():
            return value.strip()
    return None


def _client(args: argparse.Namespace) -> Client:
    server = (
        getattr(args, "server", None)
        or os.environ.get(SERVER_ENV)
        or _kubeconfig_server(_state_dir(args))
        or DEFAULT_SERVER
    )
    ca = _state_dir(args) / CA_FILE
    return Client(server, token=_token(args), ca_file=ca if ca.is_file() else None)


def _list_pods(client: Client) -> list[PodView]:
    from minikubelet.api.model import PodList

    data = client.get_json("/pods")
    try:
        return PodList.model_validate(data).items
    except ValueError as exc:
        raise CommandError(f"error: the server sent an unreadable PodList: {exc}") from None


def _pod_name(pod: PodView) -> str:
    return str(pod.metadata.get("name") or "")


def _pod_namespace(pod: PodView) -> str:
    return str(pod.metadata.get("namespace") or "default")


def _not_found(name: str, candidates: Sequence[str]) -> CommandError:
    message = f'Error from server (NotFound): pods "{name}" not found'
    close = [c for c in candidates if c.startswith(name)] or difflib.get_close_matches(
        name, candidates, n=3
    )
    if close:
        message += f"\nhint: did you mean {', '.join(close)}?"
    return CommandError(message)


def _strip_kind(name: str) -> str:
    """``pod/web`` and ``pods/web`` name a pod, as kubectl accepts them."""
    kind, sep, rest = name.partition("/")
    return rest if sep and kind in POD_RESOURCES else name


# --- get ------------------------------------------------------------------------------------


def cmd_get(args: argparse.Namespace) -> int:
    from minikubelet import printers
    from minikubelet.api.model import dump

    resource, _, name = args.resource.partition("/")
    if resource not in POD_RESOURCES:
        raise CommandError(f'error: the server doesn\'t have a resource type "{args.resource}"')
    name = name or args.name or ""
    pods = _list_pods(_client(args))
    if not args.all_namespaces:
        pods = [p for p in pods if _pod_namespace(p) == args.namespace]
    if name:
        matched = [p for p in pods if _pod_name(p) == name]
        if not matched:
            raise _not_found(name, [_pod_name(p) for p in pods])
        pods = matched

    output = args.output
    if output in ("json", "yaml"):
        objects: list[JsonValue] = [dump(p) for p in pods]
        obj = objects[0] if name else printers.list_object(objects)
        sys.stdout.write(printers.to_json(obj) if output == "json" else printers.to_yaml(obj))
        return 0
    if not pods:
        where = "" if args.all_namespaces else f" in {args.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    table = printers.get_pods_table(
        pods, wide=output == "wide", now=datetime.now(UTC), all_namespaces=args.all_namespaces
    )
    sys.stdout.write(table)
    return 0


# --- describe -------------------------------------------------------------------------------


def cmd_describe(args: argparse.Namespace) -> int:
    from minikubelet import printers
    from minikubelet.api.model import EventList

    resource, _, name = args.resource.partition("/")
    if resource not in POD_RESOURCES:
        raise CommandError(f'error: the server doesn\'t have a resource type "{args.resource}"')
    name = name or args.name or ""
    client = _client(args)
    pods = [p for p in _list_pods(client) if _pod_namespace(p) == args.namespace]
    # kubectl: an exact name first; failing that, every pod whose name has it as a prefix
    # (so `describe pod web` finds the static pod web-<node>).
    selected = [p for p in pods if _pod_name(p) == name] if name else pods
    if name and not selected:
        selected = [p for p in pods if _pod_name(p).startswith(name)]
    if not selected:
        if name:
            raise _not_found(name, [_pod_name(p) for p in pods])
        print(f"No resources found in {args.namespace} namespace.", file=sys.stderr)
        return 0

    now = datetime.now(UTC)
    texts = []
    for pod in selected:
        selector = [
            f"involvedObject.name={_pod_name(pod)}",
            f"involvedObject.namespace={_pod_namespace(pod)}",
        ]
        uid = pod.metadata.get("uid")
        if uid:
            selector.append(f"involvedObject.uid={uid}")
        data = client.get_json("/events", {"fieldSelector": ",".join(selector)})
        events: list[Event] = EventList.model_validate(data).items
        texts.append(printers.describe_pod(pod, events, now=now))
    sys.stdout.write("\n\n".join(texts))
    return 0


# --- logs -----------------------------------------------------------------------------------


def cmd_logs(args: argparse.Namespace) -> int:
    name = _strip_kind(args.pod)
    client = _client(args)
    pods = [p for p in _list_pods(client) if _pod_namespace(p) == args.namespace]
    pod = next((p for p in pods if _pod_name(p) == name), None)
    if pod is None:
        raise _not_found(name, [_pod_name(p) for p in pods])

    container = args.container
    if not container:
        names = _container_names(pod.spec.get("containers"))
        annotations = pod.metadata.get("annotations")
        default = annotations.get(DEFAULT_CONTAINER) if isinstance(annotations, dict) else None
        if isinstance(default, str) and default in names:
            container = default
        elif len(names) == 1:
            container = names[0]
        elif names:
            # kubectl's podcmd.FindOrDefaultContainerByName: the first container, said on stderr.
            init = _container_names(pod.spec.get("initContainers"))
            listed = ", ".join([*names, *(f"{n} (init)" for n in init)])
            print(f'Defaulted container "{names[0]}" out of: {listed}', file=sys.stderr)
            container = names[0]

    query: dict[str, str] = {}
    if args.follow:
        query["follow"] = "true"
    if args.previous:
        query["previous"] = "true"
    if args.tail is not None and args.tail >= 0:
        query["tailLines"] = str(args.tail)
    path = "/containerLogs/" + "/".join(
        urllib.parse.quote(part, safe="") for part in (args.namespace, name, container)
    )
    out = sys.stdout.buffer
    with client.open(path, query, timeout=None if args.follow else REQUEST_TIMEOUT) as response:
        while chunk := response.read1(65536):
            out.write(chunk)
            out.flush()
    return 0


def _container_names(value: JsonValue) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(c.get("name")) for c in value if isinstance(c, dict)]


# --- validate -------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from minikubelet.api.errors import ManifestError
    from minikubelet.source.manifests import load_manifest

    node = args.node_name or _default_node_name()
    invalid = 0
    for file in args.files:
        try:
            static = load_manifest(Path(file), node_name=node)
        except ManifestError as exc:
            invalid += 1
            for line in exc.lines():
                print(line, file=sys.stderr)
            continue
        for warning in static.warnings:
            print(f"{file}: {warning}", file=sys.stderr)
        print(f"{file}: valid (pod/{static.name})")
    return 1 if invalid else 0


def _default_node_name() -> str:
    from minikubelet.config import default_node_name

    return default_node_name()


# --- create pod -----------------------------------------------------------------------------


def run_manifest(
    name: str,
    *,
    image: str,
    env: Sequence[tuple[str, str]] = (),
    restart: str = "Always",
    argv: Sequence[str] = (),
    as_command: bool = False,
) -> dict[str, JsonValue]:
    """The Pod ``kubectl run NAME --image=IMG --env=K=V --restart=R [--command] -- ARGV`` makes,
    less the cluster-only fields (dnsPolicy, creationTimestamp, status)."""
    container: dict[str, JsonValue] = {"name": name, "image": image}
    if argv:
        container["command" if as_command else "args"] = list(argv)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env]
    container["resources"] = {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"run": name}, "name": name},
        "spec": {"containers": [container], "restartPolicy": restart},
    }


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` atomically: a dot-named temp file in the same directory
    (the manifest watcher ignores dotfiles), fsync, rename, fsync the directory. A reader sees
    no file or the whole file. The file is mode 0644 whatever the umask, owned by the caller:
    as root, it passes the daemon's trust rules. Raises FileExistsError if ``path`` exists."""
    if path.exists():
        raise FileExistsError(str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fchmod(fd, 0o644)  # not less either: a umask of 077 would leave 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # Between the check above and this rename another writer could create the file; a CLI
        # racing itself is not worth a platform-specific RENAME_NOREPLACE.
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _parse_env(values: Sequence[str]) -> list[tuple[str, str]]:
    env = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"error: invalid env: {item}")
        env.append((key, value))
    return env


def cmd_create(args: argparse.Namespace) -> int:
    from minikubelet import printers
    from minikubelet.api.errors import ManifestError
    from minikubelet.api.validation import decode_pod

    if args.resource not in POD_RESOURCES:
        raise CommandError(f'error: unknown resource type "{args.resource}" (only pod)')
    manifest = run_manifest(
        args.name,
        image=args.image,
        env=_parse_env(args.env),
        restart=args.restart,
        argv=args.argv,
        as_command=args.as_command,
    )
    text = printers.to_yaml(manifest)
    manifests = Path(args.manifests) if args.manifests else _default_manifests()
    path = manifests / f"{args.name}.yaml"
    try:
        decode_pod(text.encode(), source=str(path))
    except ManifestError as exc:
        raise CommandError("\n".join(exc.lines())) from None

    if not args.dry_run:
        if not manifests.is_dir():
            raise CommandError(
                f'error: the manifests directory "{manifests}" does not exist (see --manifests)'
            )
        try:
            write_new_file(path, text.encode())
        except FileExistsError:
            raise CommandError(
                f'Error from server (AlreadyExists): pods "{args.name}" already exists'
                f" (file {path})"
            ) from None
        _warn_if_refused(path)
    if args.output == "yaml":
        sys.stdout.write(text)
    elif args.output == "json":
        sys.stdout.write(printers.to_json(manifest))
    else:
        print(f"pod/{args.name} created{' (dry run)' if args.dry_run else ''}")
    return 0


def _warn_if_refused(path: Path) -> None:
    """Say so when a daemon running as root or as this user would refuse the file written (a
    directory on its way that others can write, say): the pod would not start."""
    from minikubelet.source import trust

    owners = trust.trusted_owners()
    problems = trust.check_path(str(path.absolute()), owners=owners)
    if problems:
        for line in trust.refusal(str(path), problems, owners=owners).lines():
            print(f"warning: {line}", file=sys.stderr)


def _default_manifests() -> Path:
    from minikubelet.config import default_paths

    return default_paths()[0]


# --- kubeconfig -----------------------------------------------------------------------------


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    """Print the kubeconfig the daemon wrote (server, token, CA), with --server if given."""
    path = _state_dir(args) / KUBECONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CommandError(
            f"error: {path} does not exist: the daemon writes it when it starts (see --state-dir)"
        ) from None
    except OSError as exc:
        raise CommandError(f"error: cannot read {path}: {exc.strerror} (run as root?)") from None
    server = getattr(args, "server", None)
    if server:
        from minikubelet.server.kubeconfig import with_server

        text = with_server(text, server)
    sys.stdout.write(text)
    return 0


# --- run (the daemon) -----------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces) -> (host, port)."""
    from minikubelet.config import ConfigError

    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen: Invalid value: {value!r}: must be HOST:PORT")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    return host, int(port_text)


def build_config(args: argparse.Namespace) -> DaemonConfig:
    """Defaults, then ``--config``, then flags; paths made absolute. Raises ConfigError."""
    from minikubelet.config import DaemonConfig, default_node_name, default_paths, load_config_file

    manifests, state_dir = default_paths()
    cfg = DaemonConfig(manifests=manifests, state_dir=state_dir, node_name=default_node_name())
    if args.config:
        cfg = load_config_file(Path(args.config), cfg)
    if args.manifests:
        cfg = replace(cfg, manifests=Path(args.manifests))
    if args.state_dir:
        cfg = replace(cfg, state_dir=Path(args.state_dir))
    if args.node_name:
        cfg = replace(cfg, node_name=args.node_name.lower())
    if args.runtime:
        cfg = replace(cfg, runtime=args.runtime)
    if args.listen:
        host, port = parse_listen(args.listen)
        cfg = replace(cfg, listen_host=host, listen_port=port)
    if args.podman_socket:
        cfg = replace(cfg, podman_socket=Path(args.podman_socket))
    if args.containerd_socket:
        cfg = replace(cfg, containerd_socket=Path(args.containerd_socket))
    # The daemon must not depend on its working directory (mounts, annotations, logs).
    return replace(
        cfg,
        manifests=cfg.manifests.absolute(),
        state_dir=cfg.state_dir.absolute(),
        podman_socket=cfg.podman_socket.absolute(),
        containerd_socket=cfg.containerd_socket.absolute(),
    )


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from minikubelet.config import ConfigError

    try:
        cfg = build_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from minikubelet import daemon

    asyncio.run(daemon.run(cfg))
    return 0


# --- parser ---------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    # --server is accepted before and after the subcommand (kubectl's global flags).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        "-s",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"API address (default: ${SERVER_ENV}, else the state dir's kubeconfig, "
        f"else {DEFAULT_SERVER})",
    )
    namespaced = argparse.ArgumentParser(add_help=False)
    namespaced.add_argument("-n", "--namespace", default="default", metavar="NS")
    # How a client command finds its credentials.
    credentials = argparse.ArgumentParser(add_help=False)
    credentials.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"the API token (default: ${TOKEN_ENV}, else <state dir>/{TOKEN_FILE})",
    )
    credentials.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the daemon's state dir, where its token and CA are (default: as the daemon's)",
    )

    parser = argparse.ArgumentParser(
        prog="minikubelet",
        description="A single-node kubelet: static Kubernetes pods from a directory.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon", parents=[common])
    run.add_argument("--manifests", metavar="DIR", help="the static pod manifests directory")
    run.add_argument("--state-dir", metavar="DIR")
    run.add_argument("--node-name", metavar="NAME")
    run.add_argument("--runtime", metavar="NAME", help="default runtime class (process)")
    run.add_argument("--listen", metavar="HOST:PORT", help="API address (127.0.0.1:10255)")
    run.add_argument("--config", metavar="FILE", help="YAML config file (flags win)")
    run.add_argument("--podman-socket", metavar="PATH")
    run.add_argument("--containerd-socket", metavar="PATH")
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
    )
    run.add_argument(
        "-v",
        dest="log_level",
        action="store_const",
        const="debug",
        help="debug logging (same as --log-level debug)",
    )
    run.set_defaults(handler=cmd_run)

    get = sub.add_parser(
        "get", help="list pods (kubectl get)", parents=[common, namespaced, credentials]
    )
    get.add_argument("resource", metavar="pods")
    get.add_argument("name", nargs="?", metavar="NAME")
    get.add_argument("-o", "--output", choices=["wide", "json", "yaml"])
    get.add_argument("-A", "--all-namespaces", action="store_true")
    get.set_defaults(handler=cmd_get)

    describe = sub.add_parser(
        "describe",
        help="show a pod in detail (kubectl describe)",
        parents=[common, namespaced, credentials],
    )
    describe.add_argument("resource", metavar="pod")
    describe.add_argument("name", nargs="?", metavar="NAME")
    describe.set_defaults(handler=cmd_describe)

    logs = sub.add_parser(
        "logs", help="print a container's log", parents=[common, namespaced, credentials]
    )
    logs.add_argument("pod", metavar="POD")
    logs.add_argument("-c", "--container", metavar="CONTAINER")
    logs.add_argument("-p", "--previous", action="store_true")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=-1, metavar="N")
    logs.set_defaults(handler=cmd_logs)

    validate = sub.add_parser("validate", help="check manifest files offline")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--node-name", metavar="NAME", help="node the pods are named for")
    validate.set_defaults(handler=cmd_validate)

    create = sub.add_parser(
        "create",
        help="write a pod manifest into the manifests directory (kubectl run)",
        usage="minikubelet create pod NAME --image IMG [--env K=V]... [--restart POLICY] "
        "[--command] [--manifests DIR] [--dry-run] [-o yaml|json] [-- CMD [ARG...]]",
    )
    create.add_argument("resource", metavar="pod")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--image", required=True, metavar="IMG")
    create.add_argument("--env", action="append", default=[], metavar="K=V")
    create.add_argument("--restart", default="Always", choices=["Always", "OnFailure", "Never"])
    create.add_argument(
        "--command",
        dest="as_command",
        action="store_true",
        help="CMD goes to command, not args (kubectl run)",
    )
    create.add_argument("--manifests", metavar="DIR")
    create.add_argument("--dry-run", action="store_true", help="print, do not write")
    create.add_argument("-o", "--output", choices=["yaml", "json"])
    create.set_defaults(handler=cmd_create)

    kubeconfig = sub.add_parser(
        "kubeconfig",
        help="print a kubeconfig (server, token, CA) for kubectl",
        parents=[common],
    )
    kubeconfig.add_argument(
        "--state-dir", metavar="DIR", help="the daemon's state dir (default: as the daemon's)"
    )
    kubeconfig.set_defaults(handler=cmd_kubeconfig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" is the container's argv (create pod ... -- CMD ARG...):
    # split it off before argparse, which would otherwise try to place it among positionals.
    tail: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, tail = words[:at], words[at + 1 :]
    args = parser.parse_args(words)
    if tail and args.command != "create":
        parser.error(f"unexpected arguments after --: {' '.join(tail)}")
    args.argv = tail
    handler: Callable[[argparse.Namespace], int] = args.handler
    if args.command == "run":
        _setup_logging(args.log_level)
    else:
        _setup_logging("warning")
    try:
        return handler(args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """After EPIPE (``minikubelet logs x | head``), stop Python complaining at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
