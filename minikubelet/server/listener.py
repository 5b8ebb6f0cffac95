"""The API's listening socket: connections accepted by hand, bounded, optionally over TLS.

``serve`` accepts connections itself rather than through asyncio's server, so that no client
can take the daemon's file descriptors (which it needs to run pods and to write its state). It
holds at most ``max_connections`` at once (more wait in the kernel's listen backlog, costing
the daemon nothing), closes a connection idle for ``idle_timeout`` (one that never sent a
request included), and when accept() fails for want of descriptors or memory (EMFILE, ENFILE,
ENOBUFS, ENOMEM) it backs off and says so in one log line per minute, not a traceback per try.

TLS: given an ``ssl.SSLContext``, each accepted socket is wrapped before the HTTP protocol sees
it; a handshake that does not finish within ``idle_timeout`` is dropped like an idle
connection. With ``plain_too`` (a loopback listener) the same port also serves plain HTTP: the
first byte a client sends tells the two apart (a TLS record starts with 0x16, the handshake
type; an HTTP request starts with a method's letter), so ``curl http://127.0.0.1:10255/healthz``
keeps working beside kubectl, which sends its token over TLS only. Beyond loopback a plain
request gets a 400 naming the fix, as Go's servers answer one.

The context offers only HTTP/1.1 in ALPN (watches, log streams and WebSocket
upgrades are HTTP/1.1 things), so kubectl does not try HTTP/2.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl

from aiohttp import web

from minikubelet.server.quiet import QuietLog

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 1000  # connections served at once (api.maxConnections)
IDLE_TIMEOUT = 60.0  # seconds a connection may wait for its next request (api.idleTimeout)

# --- serving --------------------------------------------------------------------------------

ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() failures that mean "out of descriptors or memory": back off and try again."""

ACCEPT_BACKOFF_MAX = 1.0  # seconds between accept() attempts while they fail that way
FULL_POLL = 0.05  # seconds between checks for a free slot while at max_connections
QUIET_PERIOD = 60.0  # seconds: at most one log line per kind of trouble


class Server:
    """A listening API server. ``port`` is the bound port (useful when asked for port 0)."""

    def __init__(
        self,
        *,
        runner: web.AppRunner,
        listener: socket.socket,
        host: str,
        max_connections: int,
        tls: ssl.SSLContext | None = None,
        plain_too: bool = False,
        handshake_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.runner = runner
        self.host = host
        self.tls = tls
        self.plain_too = plain_too  # with tls: a client that does not start TLS gets plain HTTP
        self._handshake_timeout = handshake_timeout
        self.port = int(listener.getsockname()[1])
        self.max_connections = max_connections
        self._listener = listener
        self._quiet = QuietLog(QUIET_PERIOD, logger=log)
        self._handshakes: set[asyncio.Task[None]] = set()  # TLS connections not yet set up
        self._accepting = asyncio.get_running_loop().create_task(
            self._accept_loop(), name=f"API accept {host}:{self.port}"
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now."""
        server = self.runner.server
        open_now = len(server.connections) if server is not None else 0
        return open_now + len(self._handshakes)

    async def wait(self) -> None:
        """Return (or raise) only when the accept loop has ended: a failure of the API itself."""
        await asyncio.wait([self._accepting])
        if not self._accepting.cancelled():
            self._accepting.result()

    async def cleanup(self) -> None:
        """Stop listening, give open requests (log streams) a moment, then close them."""
        self._accepting.cancel()
        await asyncio.wait([self._accepting])
        for task in self._handshakes:
            task.cancel()
        if self._handshakes:
            await asyncio.wait(self._handshakes)
        self._listener.close()
        await self.runner.cleanup()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        protocol_factory = self.runner.server
        assert protocol_factory is not None
        delay = 0.0  # the current back-off after a failed accept()
        while True:
            while self.connections >= self.max_connections:
                self._quiet.say(
                    "full",
                    f"API: {self.max_connections} connections open (api.maxConnections); "
                    "new ones wait until one closes",
                )
                await asyncio.sleep(FULL_POLL)
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                if exc.errno in ACCEPT_ERRNOS:
                    delay = min(max(2 * delay, 0.05), ACCEPT_BACKOFF_MAX)
                    self._quiet.say(
                        "accept",
                        f"API: cannot accept connections: {exc}; retrying every "
                        f"{ACCEPT_BACKOFF_MAX:g}s at most ({self.connections} open)",
                    )
                    await asyncio.sleep(delay)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # the client gave up, or a firewall said no: nothing to serve
                raise
            delay = 0.0
            try:
                if self.tls is None:
                    await loop.connect_accepted_socket(protocol_factory, conn)
                else:
                    # The handshake runs in its own task: a slow client must not hold up accept().
                    # It counts as a connection until it is one (or is dropped).
                    task = loop.create_task(
                        self._tls_connection(conn), name=f"API TLS handshake {self.port}"
                    )
                    self._handshakes.add(task)
                    task.add_done_callback(self._handshakes.discard)
            except OSError as exc:
                conn.close()
                self._quiet.say("setup", f"API: setting up a connection failed: {exc}")

    async def _tls_connection(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        protocol_factory = self.runner.server
        assert protocol_factory is not None and self.tls is not None
        try:
            async with asyncio.timeout(self._handshake_timeout):
                first = await _peek(conn)
            if first != TLS_HANDSHAKE:
                if first and self.plain_too:
                    await loop.connect_accepted_socket(protocol_factory, conn)
                else:
                    if first:
                        # Read what the client sent first: closing with unread data resets the
                        # connection, and the client would never see the answer.
                        with contextlib.suppress(OSError):
                            conn.recv(64 * 1024)
                        await loop.sock_sendall(conn, PLAIN_TO_TLS_PORT)
                        conn.shutdown(socket.SHUT_WR)
                    conn.close()
                return
            await loop.connect_accepted_socket(
                protocol_factory,
                conn,
                ssl=self.tls,
                ssl_handshake_timeout=self._handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            conn.close()
            log.debug("API: TLS connection dropped: %s", exc)


TLS_HANDSHAKE = b"\x16"  # the content type of a TLS record that opens a connection
PLAIN_TO_TLS_PORT = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server: use https:// (the CA is in the state "
    b"dir's kubeconfig)\n"
)


async def _peek(conn: socket.socket) -> bytes:
    """The first byte the client sent, left in the socket for whoever reads it next; b"" when
    the client closed without sending anything."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    try:
        return conn.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return await _peek(conn)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for the serving certificate: TLS 1.2 or later, HTTP/1.1 only."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=128)
    listener.setblocking(False)
    return listener


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 2.0,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    tls: ssl.SSLContext | None = None,
    plain_too: bool = False,
) -> Server:
    """Start listening on ``host:port`` (port 0 picks a free port) and return the handle."""
    # handler_cancellation: a client that hangs up (``logs -f`` interrupted) cancels its handler,
    # which closes the log stream at once instead of when the container next writes.
    # keepalive_timeout: aiohttp closes a connection that waits this long for a request,
    # the first one included; a response being streamed is not waiting.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=True,
        keepalive_timeout=idle_timeout,
    )
    await runner.setup()
    try:
        listener = _listen(host, port)
    except BaseException:
        await runner.cleanup()
        raise
    server = Server(
        runner=runner,
        listener=listener,
        host=host,
        max_connections=max_connections,
        tls=tls,
        plain_too=plain_too,
        handshake_timeout=idle_timeout,
    )
    log.info(
        "API listening on %s (at most %d connections, idle ones closed after %gs)",
        server.url,
        max_connections,
        idle_timeout,
    )
    return server
