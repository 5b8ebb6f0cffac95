"""Small servers that e2e pods run as their containers (``sys.executable probe_servers.py ...``).

The process runtime has no images: a container is a host process, so the targets the probes
talk to are these scripts, started by the daemon like any container command. The file lives in
the repository (visible inside every pod: only /tmp is private) and uses the venv's python
(stdlib, plus grpcio for ``grpc``). Each mode serves until SIGTERM, then exits 0.

    http-liveness PORT RECORD   agnhost ``liveness``: /healthz answers 200 for the first 10 s
                                of this process, 500 after; every request's Custom-Header value
                                is appended to RECORD, and a request without
                                ``Custom-Header: Awesome`` gets 500 at once.
    http PORT                   /ok 200; /slow 200 after 5 s; /redirect-same 302 to /ok on the
                                same host; /redirect-other 302 to http://localhost:PORT/ok (another
                                host for a probe that dialled 127.0.0.1).
    tcp PORT                    listens and accepts (and closes) connections.
    tcp-full PORT               listens with a backlog of 0, fills it with its own connections
                                and never accepts: further SYNs are dropped, dials time out.
    grpc PORT STATUS [DELAY]    grpc.health.v1 with the empty service set to STATUS (SERVING,
                                NOT_SERVING); every Check waits DELAY seconds first.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import signal
import socket
import socketserver
import sys
import threading
import time

LIVENESS_HEALTHY_SECONDS = 10.0
SLOW_SECONDS = 5.0


def _stop_on_term() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def _serve_http(port: int, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
    stop = _stop_on_term()
    server = _Server(("0.0.0.0", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"serving on {port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def http_liveness(port: int, record: str) -> None:
    started = time.monotonic()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            header = self.headers.get("Custom-Header")
            with open(record, "a", encoding="utf-8") as f:
                f.write(f"{header}\n")
            if self.path != "/healthz":
                self.answer(404, "not found")
            elif header != "Awesome":
                self.answer(500, "missing Custom-Header: Awesome")
            elif time.monotonic() - started < LIVENESS_HEALTHY_SECONDS:
                self.answer(200, "ok")
            else:
                self.answer(500, f"error: {time.monotonic() - started:.1f}s old")

    _serve_http(port, Handler)


def http_routes(port: int) -> None:
    class Handler(_Quiet):
        def do_GET(self) -> None:
            if self.path == "/ok":
                self.answer(200, "ok")
            elif self.path == "/slow":
                time.sleep(SLOW_SECONDS)
                self.answer(200, "slow ok")
            elif self.path == "/redirect-same":
                self.answer(302, "moved", {"Location": "/ok"})
            elif self.path == "/redirect-other":
                self.answer(302, "moved away", {"Location": f"http://localhost:{port}/ok"})
            else:
                self.answer(404, "not found")

    _serve_http(port, Handler)


def tcp_accept(port: int) -> None:
    stop = _stop_on_term()
    with socket.create_server(("0.0.0.0", port), reuse_port=False) as server:
        server.settimeout(0.2)
        print(f"listening on {port}", flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = server.accept()
                conn.close()


def tcp_full(port: int) -> None:
    stop = _stop_on_term()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(0)
    fillers = []
    # The accept queue holds backlog + 1 connections; fill it (a few more to be sure: extra
    # dials simply stay in SYN_SENT and are never completed).
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        fillers.append(client)
    print(f"listening on {port} with a full backlog", flush=True)
    stop.wait()
    for client in fillers:
        client.close()
    server.close()


def grpc_health(port: int, status: str, delay: float) -> None:
    import grpc.aio
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    class SlowHealth(health.aio.HealthServicer):  # type: ignore[misc]
        async def Check(self, request: object, context: object) -> object:
            if delay:
                await asyncio.sleep(delay)
            return await super().Check(request, context)

    async def serve() -> None:
        server = grpc.aio.server()
        servicer = SlowHealth()
        await servicer.set("", health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        server.add_insecure_port(f"0.0.0.0:{port}")
        await server.start()
        print(f"grpc health on {port}: {status}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0)

    asyncio.run(serve())


def main(argv: list[str]) -> None:
    mode, port = argv[0], int(argv[1])
    if mode == "http-liveness":
        http_liveness(port, argv[2])
    elif mode == "http":
        http_routes(port)
    elif mode == "tcp":
        tcp_accept(port)
    elif mode == "tcp-full":
        tcp_full(port)
    elif mode == "grpc":
        grpc_health(port, argv[2], float(argv[3]) if len(argv) > 3 else 0.0)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
