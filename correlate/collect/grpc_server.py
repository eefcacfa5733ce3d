"""OTLP/gRPC: the ``Export`` method of the trace, metrics and logs services (needs grpcio).

The methods are registered with raw bytes in and out, so a request goes
through the same checks as an OTLP/HTTP protobuf body and a trace request is
written exactly as it arrived. gRPC's own ``gzip`` compression is undone by
grpcio. A refused request gets ``UNAVAILABLE`` (retried by OTLP clients) under
back-pressure or while stopping, ``INVALID_ARGUMENT`` for a malformed one;
grpcio answers ``RESOURCE_EXHAUSTED`` past the size limit.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from correlate.collect.signals import BadRequest, Decoded, decode_protobuf, response
from correlate.collect.spool import NotStored
from correlate.errors import CorrelateError

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}


def grpc_available() -> bool:
    """Whether grpcio is installed (``pip install 'correlate[grpc]'``)."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


def start_grpc(
    host: str,
    port: int,
    *,
    store: Callable[[Decoded], None],
    counters: Any,
    budget: Any,
    max_body_bytes: int,
    workers: int = 8,
) -> tuple[Any, int]:
    """Start a gRPC server on ``host:port``; returns (server, the port it bound)."""
    import grpc

    def method(signal: str) -> Any:
        def export(request: bytes, context: Any) -> bytes:
            if not budget.take(len(request)):
                counters.refused(503)
                context.abort(grpc.StatusCode.UNAVAILABLE, "the receiver is busy: try again")
            try:
                try:
                    decoded = decode_protobuf(signal, request)
                except BadRequest as exc:
                    counters.refused(400)
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                try:
                    store(decoded)
                except NotStored as exc:
                    counters.refused(503)
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                return response(signal, decoded, as_json=False)
            finally:
                budget.give(len(request))

        return grpc.unary_unary_rpc_method_handler(export)

    handlers = [
        grpc.method_handlers_generic_handler(service, {"Export": method(signal)})
        for signal, service in SERVICES.items()
    ]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="correlate-collect-grpc"),
        handlers=handlers,
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=workers * 4,
    )
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError as exc:
        raise CorrelateError(
            f"cannot listen for OTLP/gRPC on {target}: {exc}; pass another --grpc-port, or 0"
        ) from None
    if not bound:
        raise CorrelateError(
            f"cannot listen for OTLP/gRPC on {target} (in use?); pass another --grpc-port, or 0"
        )
    server.start()
    return server, bound
