"""Probe handlers: one probe attempt (exec, httpGet, tcpSocket, grpc) -> ProbeOutcome.

This module owns what a single attempt does and the exact text it reports, and nothing about
when to probe or what a result means for the container (that is ``probes.worker``). Handlers
run from the host, like kubelet's: nothing is needed inside the image except for exec probes,
which go through the runtime's exec.

Results follow kubelet's ``pkg/probe``: SUCCESS, FAILURE (the target answered badly or not at
all: the message is what users see in ``Liveness probe failed: ...``), WARNING (success, with an
event: an HTTP redirect that was not followed) and UNKNOWN, which here always means the probe
*errored* (a port name that resolves to nothing, a runtime that could not exec): kubelet retries
those within one tick and then discards them. Handlers return outcomes and never raise for
anything a user's pod can cause.

Messages are Go's, because users search for them: ``Get "http://10.0.0.5:8080/healthz": dial tcp
10.0.0.5:8080: connect: connection refused``, ``HTTP probe failed with statuscode: 500``,
``command "cat /tmp/healthy" timed out``. The helpers that render Go's ``%q`` and ``%v`` of a
duration live here for that reason.

The HTTP client is one aiohttp session per ``HTTPProber`` (kubelet has one transport per prober):
no keep-alive, no proxy from the environment, TLS verification off, no compression, redirects
followed by hand so that only same-host ones are followed, at most 10.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from minikubelet.api.env import expand
from minikubelet.api.errors import MinikubeletError
from minikubelet.api.model import Container, HTTPGetAction, IntOrString, TCPSocketAction

K8S_MINOR = "1.34"
"""The Kubernetes version whose kubelet minikubelet mimics (``kube-probe/<major>.<minor>``)."""

USER_AGENT = f"kube-probe/{K8S_MINOR}"

MAX_OUTPUT = 10 * 1024
"""Bytes of exec output and HTTP body kept (kubelet's maxReadLength / maxRespBodyLength)."""

MAX_REDIRECTS = 10

EXEC_GRACE = 2.0
"""Seconds past timeoutSeconds after which an exec the runtime has not ended counts as timed out."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ProbeResult(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"  # success, but kubelet records a ProbeWarning event
    UNKNOWN = "unknown"  # the probe errored; output is the error


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    result: ProbeResult
    output: str  # the message users see after "Liveness probe failed: " (or the error)


class ProbeHandler(Protocol):
    """One probe action, bound to its container and pod; ``probe()`` makes one attempt."""

    async def probe(self) -> ProbeOutcome: ...


class ExecOutput(Protocol):
    """What an exec returns (``runtime.base.ExecResult`` has this shape)."""

    @property
    def exit_code(self) -> int: ...

    @property
    def output(self) -> bytes: ...


ExecFn = Callable[[Sequence[str], float], Awaitable[ExecOutput]]
"""Run a command in one container instance with a timeout; raises TimeoutError on timeout."""


class PortError(ValueError):
    """A probe port that names no container port (kubelet: the probe errors, every tick)."""


# --- Go renderings -------------------------------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote): printable runes kept, the rest escaped."""
    out = ['"']
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_duration(seconds: float) -> str:
    """Go's ``%v`` of a whole-second time.Duration: ``1s``, ``1m30s``, ``1h0m0s``."""
    total = int(seconds)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def join_host_port(host: str, port: int) -> str:
    """net.JoinHostPort: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _errno_text(exc: OSError) -> str:
    """The syscall error as Go prints it: ``connection refused``, ``no route to host``."""
    if exc.errno is not None:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc)


def dial_error(host: str, port: int, exc: OSError) -> str:
    """A failed TCP dial in Go's words."""
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    addr = join_host_port(host, port)
    if exc.errno in (errno.ETIMEDOUT,) or isinstance(exc, TimeoutError):
        return f"dial tcp {addr}: i/o timeout"
    return f"dial tcp {addr}: connect: {_errno_text(exc)}"


def _go_atoi_error(text: str) -> str | None:
    """strconv.Atoi's error for text, or None when it parses."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax"
    if not -(2**63) <= int(text) < 2**63:
        return f"strconv.Atoi: parsing {go_quote(text)}: value out of range"
    return None


def resolve_port(port: IntOrString, container: Container) -> int:
    """probe.ResolveContainerPort: a number, a container port's name, or a number as a string."""
    if isinstance(port, int):
        number = port
    else:
        named = [p.container_port for p in container.ports or [] if p.name == port]
        if named:
            number = named[0]
        else:
            problem = _go_atoi_error(port)
            if problem is not None:
                raise PortError(problem)
            number = int(port)
    if 0 < number < 65536:
        return number
    raise PortError(f"invalid port number: {number}")


def static_env(container: Container) -> dict[str, str]:
    """The env an exec probe's ``$(VAR)`` sees: kubelet's ExpandContainerCommandOnlyStatic.

    Every declared name maps to its literal ``value`` as written (not itself expanded); names
    set through ``valueFrom`` map to the empty string. envFrom is not consulted.
    """
    return {var.name: var.value or "" for var in container.env or []}


# --- exec ----------------------------------------------------------------------------------------


class ExecHandler:
    """Run the probe's command in the container; exit 0 is success."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        exec_fn: ExecFn,
        timeout: float,
    ) -> None:
        self.command = [expand(arg, env) for arg in command]
        self._exec = exec_fn
        self._timeout = timeout

    async def probe(self) -> ProbeOutcome:
        try:
            # The runtime enforces the timeout; the outer bound only guards against one that
            # does not return.
            async with asyncio.timeout(self._timeout + EXEC_GRACE):
                result = await self._exec(self.command, self._timeout)
        except TimeoutError:
            # CRI ExecSync's timeout, as kubelet reports it (exec.NewTimeoutError's text).
            rendered = go_quote(" ".join(self.command))
            return ProbeOutcome(ProbeResult.FAILURE, f"command {rendered} timed out")
        except (MinikubeletError, OSError) as exc:
            return ProbeOutcome(ProbeResult.UNKNOWN, str(exc) or type(exc).__name__)
        output = result.output[:MAX_OUTPUT].decode(errors="replace")
        if result.exit_code == 0:
            return ProbeOutcome(ProbeResult.SUCCESS, output)
        return ProbeOutcome(ProbeResult.FAILURE, output)


# --- tcpSocket -----------------------------------------------------------------------------------


async def dial(host: str, port: int, timeout: float) -> str | None:
    """Open and close a TCP connection like net.DialTimeout; None on success, else Go's error."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            first: OSError | None = None
            for family, type_, proto, _, address in infos:
                sock = socket.socket(family, type_, proto)
                try:
                    sock.setblocking(False)
                    # kubelet's ProbeDialer: linger 1s, so probes do not pile up TIME_WAITs.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 1))
                    await loop.sock_connect(sock, address)
                    return None
                except OSError as exc:
                    first = first or exc
                finally:
                    sock.close()
            assert first is not None  # getaddrinfo returns at least one address or raises
            return dial_error(host, port, first)
    except TimeoutError:
        return f"dial tcp {join_host_port(host, port)}: i/o timeout"
    except OSError as exc:
        return dial_error(host, port, exc)


class TCPSocketHandler:
    """Success if a TCP connection to host (default: the pod IP) and port can be opened."""

    def __init__(
        self, action: TCPSocketAction, *, container: Container, pod_ip: str, timeout: float
    ) -> None:
        self._action = action
        self._container = container
        self._host = action.host or pod_ip
        self._timeout = timeout

    async def probe(self) -> ProbeOutcome:
        try:
            port = resolve_port(self._action.port, self._container)
        except PortError as exc:
            return ProbeOutcome(ProbeResult.UNKNOWN, str(exc))
        problem = await dial(self._host, port, self._timeout)
        if problem is None:
            return ProbeOutcome(ProbeResult.SUCCESS, "")
        return ProbeOutcome(ProbeResult.FAILURE, problem)


# --- httpGet -------------------------------------------------------------------------------------


def canonical_header_key(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``custom-header`` -> ``Custom-Header``."""
    if not name or any(c in name for c in " \t\r\n:"):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def probe_headers(action: HTTPGetAction) -> CIMultiDict[str]:
    """request.go newProbeRequest: user headers, User-Agent and ``Accept: */*`` unless set."""
    headers: CIMultiDict[str] = CIMultiDict()
    for header in action.http_headers or []:
        headers.add(canonical_header_key(header.name), header.value)
    if "User-Agent" not in headers:
        headers["User-Agent"] = USER_AGENT
    elif not headers["User-Agent"]:
        del headers["User-Agent"]  # Go sends no User-Agent when it is set to ""
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif not headers["Accept"]:
        del headers["Accept"]  # overridden but empty: removed
    if "Host" in headers and not headers["Host"]:
        del headers["Host"]
    # Go's transport with DisableKeepAlives asks the server to close.
    headers.setdefault("Connection", "close")
    return headers


def probe_url(scheme: str, host: str, port: int, path: str) -> str:
    """formatURL: the probe's path (with any query) on scheme://host:port."""
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{scheme.lower()}://{join_host_port(host, port)}{path}"


class _Exchange(SimpleNamespace):
    """Where one probe's HTTP exchange is, for wording a timeout like Go's client does."""

    target: URL  # the request in flight (the original, or a redirect's target)
    target_text: str  # its URL as Go prints it
    connected: bool  # its TCP connection opened (set by the aiohttp trace hook)
    reading_body: bool  # headers arrived; the body is being read


async def _on_connection_created(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceConnectionCreateEndParams,
) -> None:
    exchange = context.trace_request_ctx
    if isinstance(exchange, _Exchange):
        exchange.connected = True


class _HTTPProbeError(Exception):
    """A transport error, already worded like Go's url.Error (``Get "url": ...``)."""


class HTTPProber:
    """The shared HTTP client of the probes (one aiohttp session, created on first use).

    Whoever creates it closes it with ``aclose()``; a ProbeManager that was not given one makes
    and closes its own.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_connection_create_end.append(_on_connection_created)
            self._session = aiohttp.ClientSession(
                # No keep-alive (kubelet's DisableKeepAlives) and no cap: one client serves
                # every pod's probes, and a hundred may be due in the same instant.
                connector=aiohttp.TCPConnector(force_close=True, ssl=False, limit=0),
                trust_env=False,  # never the node's proxy
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
                trace_configs=[trace],
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, *, headers: CIMultiDict[str], timeout: float) -> ProbeOutcome:
        """http.go DoHTTPProbe with kubelet's redirect checker, under one overall deadline."""
        exchange = _Exchange(target=URL(url), target_text=url, connected=False, reading_body=False)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(exchange, headers)
        except _HTTPProbeError as exc:
            return ProbeOutcome(ProbeResult.FAILURE, str(exc))
        except TimeoutError:
            pass
        # Go's texts, which are what users find in their search engines.
        if exchange.reading_body:
            # Go returns (Failure, "", err): an error, retried and then discarded.
            return ProbeOutcome(
                ProbeResult.UNKNOWN,
                "context deadline exceeded "
                "(Client.Timeout or context cancellation while reading body)",
            )
        target = exchange.target
        if exchange.connected:
            why = "context deadline exceeded"
        else:
            why = f"dial tcp {join_host_port(target.host or '', _port(target))}: i/o timeout"
        return ProbeOutcome(
            ProbeResult.FAILURE,
            f"Get {go_quote(exchange.target_text)}: {why} "
            "(Client.Timeout exceeded while awaiting headers)",
        )

    async def _exchange(self, exchange: _Exchange, headers: CIMultiDict[str]) -> ProbeOutcome:
        first = exchange.target
        via: list[URL] = []
        while True:
            target = exchange.target
            hop_headers = CIMultiDict(headers)
            if via:
                hop_headers["Referer"] = str(via[-1].with_user(None).with_fragment(None))
            try:
                response = await self._client().get(
                    target,
                    headers=hop_headers,
                    allow_redirects=False,
                    trace_request_ctx=exchange,
                    timeout=aiohttp.ClientTimeout(total=None),
                )
            except aiohttp.ClientError as exc:
                raise _HTTPProbeError(
                    f"Get {go_quote(exchange.target_text)}: {_client_error_text(exc, target)}"
                ) from exc
            via.append(target)
            async with response:
                location = response.headers.get("Location", "")
                if response.status in _REDIRECT_STATUSES and location:
                    try:
                        following = target.join(URL(location))
                    except ValueError as exc:
                        raise _HTTPProbeError(
                            f"Get {go_quote(exchange.target_text)}: failed to parse Location "
                            f"header {go_quote(location)}: {exc}"
                        ) from exc
                    if following.host != first.host:
                        # http.ErrUseLastResponse: the redirect itself is the answer.
                        exchange.reading_body = True
                        return await _judge(response)
                    if len(via) >= MAX_REDIRECTS:
                        # Go's client reports the Location it refused to follow.
                        raise _HTTPProbeError(
                            f"Get {go_quote(location)}: stopped after {MAX_REDIRECTS} redirects"
                        )
                    if URL(location).is_absolute():
                        # Go keeps a Host override only through relative redirects.
                        headers = CIMultiDict(headers)
                        headers.popall("Host", None)
                    exchange.target, exchange.target_text = following, str(following)
                    exchange.connected = False
                    continue
                exchange.reading_body = True
                return await _judge(response)


def _port(url: URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _client_error_text(exc: aiohttp.ClientError, url: URL) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return dial_error(url.host or "", _port(url), exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno is not None:
        return f"read: {_errno_text(exc)}"
    return str(exc) or type(exc).__name__


async def _judge(response: aiohttp.ClientResponse) -> ProbeOutcome:
    """Read at most 10 KiB of body and decide, as DoHTTPProbe does."""
    body = bytearray()
    try:
        while len(body) < MAX_OUTPUT:
            chunk = await response.content.read(MAX_OUTPUT - len(body))
            if not chunk:
                break
            body += chunk
    except aiohttp.ClientError as exc:
        return ProbeOutcome(ProbeResult.UNKNOWN, str(exc) or type(exc).__name__)
    text = body.decode(errors="replace")
    status = response.status
    if 200 <= status < 400:
        if status >= 300:
            return ProbeOutcome(
                ProbeResult.WARNING, f"Probe terminated redirects, Response body: {text}"
            )
        return ProbeOutcome(ProbeResult.SUCCESS, text)
    # Deliberately without the body (kubernetes issue 99425).
    return ProbeOutcome(ProbeResult.FAILURE, f"HTTP probe failed with statuscode: {status}")


class HTTPGetHandler:
    """GET scheme://host:port/path; 200-399 is success (3xx a warning)."""

    def __init__(
        self,
        action: HTTPGetAction,
        *,
        container: Container,
        pod_ip: str,
        timeout: float,
        client: HTTPProber,
    ) -> None:
        self._action = action
        self._container = container
        self._host = action.host or pod_ip
        self._timeout = timeout
        self._client = client
        self._headers = probe_headers(action)

    async def probe(self) -> ProbeOutcome:
        try:
            port = resolve_port(self._action.port, self._container)
        except PortError as exc:
            return ProbeOutcome(ProbeResult.UNKNOWN, str(exc))
        url = probe_url(self._action.scheme, self._host, port, self._action.path)
        try:
            URL(url)
        except ValueError as exc:
            return ProbeOutcome(ProbeResult.UNKNOWN, f"parse {go_quote(url)}: {exc}")
        return await self._client.get(url, headers=self._headers, timeout=self._timeout)
