"""The gRPC probe: ``grpc.health.v1.Health/Check`` on the pod IP, as kubelet's pkg/probe/grpc.

Kept apart from ``probes.handlers`` because it is the only user of grpcio, whose asyncio layer
has its own lifecycle: every probe opens one plaintext channel and closes it before returning,
so nothing (no channel, no pending call) outlives the attempt.

Kubelet dials with ``WithBlock`` under the probe's timeout, so a closed port is not an immediate
failure: the dial retries until the deadline and reports ``timeout: failed to connect service
"10.0.0.5:9000" within 1s: context deadline exceeded``. ``channel_ready()`` under the same
deadline does the same here. Every outcome is a FAILURE or SUCCESS; a gRPC probe never errors.
"""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from minikubelet.api.model import GRPCAction
from minikubelet.probes.handlers import (
    USER_AGENT,
    ProbeOutcome,
    ProbeResult,
    go_duration,
    go_quote,
    join_host_port,
)

_GO_CODE_NAMES = {grpc.StatusCode.CANCELLED: "Canceled", grpc.StatusCode.OK: "OK"}


def go_code_name(code: grpc.StatusCode) -> str:
    """codes.Code's String() in grpc-go: ``NotFound``, ``Unavailable``, ``Canceled``."""
    if code in _GO_CODE_NAMES:
        return _GO_CODE_NAMES[code]
    return "".join(part.capitalize() for part in code.name.split("_"))


class GRPCHandler:
    """Health/Check with the optional service name; SERVING is success."""

    def __init__(self, action: GRPCAction, *, pod_ip: str, timeout: float) -> None:
        self._addr = join_host_port(pod_ip, action.port)
        self._service = action.service or ""
        self._timeout = timeout

    async def probe(self) -> ProbeOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        within = go_duration(self._timeout)
        channel = grpc.aio.insecure_channel(
            self._addr,
            options=[("grpc.primary_user_agent", USER_AGENT), ("grpc.enable_retries", 0)],
        )
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await channel.channel_ready()
            except TimeoutError:
                return ProbeOutcome(
                    ProbeResult.FAILURE,
                    f"timeout: failed to connect service {go_quote(self._addr)} within {within}: "
                    "context deadline exceeded",
                )
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=self._service)
            try:
                response = await stub.Check(request, timeout=max(deadline - loop.time(), 0.001))
            except grpc.aio.AioRpcError as exc:
                return _rpc_failure(exc, within)
        finally:
            await channel.close()
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return ProbeOutcome(
                ProbeResult.FAILURE, f"service unhealthy (responded with {go_quote(name)})"
            )
        return ProbeOutcome(ProbeResult.SUCCESS, "service healthy")


def _rpc_failure(exc: grpc.aio.AioRpcError, within: str) -> ProbeOutcome:
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        message = (
            "error: this server does not implement the grpc health protocol "
            f"(grpc.health.v1.Health): {details}"
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"timeout: health rpc did not complete within {within}"
    else:
        message = (
            f"error: health rpc probe failed: rpc error: code = {go_code_name(code)} "
            f"desc = {details}"
        )
    return ProbeOutcome(ProbeResult.FAILURE, message)
