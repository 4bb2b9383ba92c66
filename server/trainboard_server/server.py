"""Building and running the gRPC server: ``make_server`` builds, ``serve`` blocks."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol, runtime_checkable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from trainboard.defaults import DEFAULT_HOST, DEFAULT_PORT
from trainboard.store import Store
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc
from trainboard.validation import MAX_MESSAGE_BYTES, MAX_READ_POINTS
from trainboard_server.auth import TokenAuthInterceptor, Tokens
from trainboard_server.servicer import ReadServicer, WriteServicer

log = logging.getLogger("trainboard.server")

SERVICE_NAMES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name for name in ("WriteService", "ReadService")
)


@runtime_checkable
class ReportsHealth(Protocol):
    """A store that says when its database becomes unusable and usable again."""

    def add_health_listener(self, listener: Callable[[bool], None]) -> None: ...


@dataclass
class ServerHandle:
    """A built server: ``start()`` it, read ``address``, ``stop()`` it.

    Once started, the health service answers SERVING (for "" and each service name)
    while the database is usable and NOT_SERVING while it is not (see
    ``database_health_changed``)."""

    server: grpc.Server
    host: str
    port: int
    health: health.HealthServicer
    _database_healthy: bool = field(default=True, repr=False)
    _started: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.server.start()
        with self._lock:
            self._started = True
            self._publish_health()

    def database_health_changed(self, healthy: bool) -> None:
        """The store's listener: the health status follows the database's."""
        with self._lock:
            self._database_healthy = healthy
            if self._started:
                self._publish_health()

    def _publish_health(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self._database_healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()


@dataclass(frozen=True)
class TlsCredentials:
    """The server's certificate chain and private key, PEM-encoded."""

    certificate_chain: bytes
    private_key: bytes

    @classmethod
    def from_files(cls, cert: str, key: str) -> TlsCredentials:
        with open(cert, "rb") as c, open(key, "rb") as k:
            return cls(c.read(), k.read())


def make_server(
    store: Store,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    max_workers: int = 32,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    tokens: Tokens | None = None,
    tls: TlsCredentials | None = None,
    page_points: int = MAX_READ_POINTS,
) -> ServerHandle:
    """A gRPC server with the write, read and health services over ``store``.

    ``port=0`` picks a free port (see ``ServerHandle.port``). Messages larger than
    ``max_message_bytes`` are refused with RESOURCE_EXHAUSTED. With ``tokens``,
    every RPC but the health check needs a valid token (``trainboard_server.auth``);
    with ``tls``, the port serves TLS only. Full-resolution scalar reads are
    answered in pages of at most ``page_points`` points per answer (all series
    together). When the store
    reports its database's health (``SqlStore`` does), the health check follows it.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="trainboard-rpc"),
        interceptors=[TokenAuthInterceptor(tokens)] if tokens is not None else [],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    pb_grpc.add_WriteServiceServicer_to_server(WriteServicer(store), server)
    reads = ReadServicer(store, page_points=page_points, max_message_bytes=max_message_bytes)
    pb_grpc.add_ReadServiceServicer_to_server(reads, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials([(tls.private_key, tls.certificate_chain)])
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # newer grpcio raises instead of returning 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (address in use?)")
    handle = ServerHandle(server=server, host=host, port=bound, health=health_servicer)
    if isinstance(store, ReportsHealth):
        store.add_health_listener(handle.database_health_changed)
    return handle


def serve(handle: ServerHandle, *, ready: threading.Event | None = None) -> None:
    """Starts the server and blocks until SIGINT or SIGTERM, then stops gracefully."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    handle.start()
    if ready is not None:
        ready.set()
    try:
        stopping.wait()
        log.info("stopping")
        handle.stop(grace=5.0)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
