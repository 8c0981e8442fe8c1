"""Listening, accepting, limiting and draining: the server as a whole.

:meth:`Server.serve` binds its listeners and reports them through ``task_status.started`` (so
``port=0`` works in tests), then accepts until :meth:`Server.shutdown`.  Every connection runs in
the server's connection nursery.  Beyond ``max_connections`` a connection is still read far enough
to answer ``503`` with ``Retry-After``; so is one from a client address that already holds
``max_connections_per_client`` open connections, answered ``429`` (a client is an IPv4 address or
an IPv6 /64: :func:`client_key`).  At most ``max_connections`` such refusals run at once, and at
most ``max_connections_per_client`` for one client; past that, new sockets are closed at once.
Under ``--workers N`` each process counts its own.  trio's ``SocketStream`` sets ``TCP_NODELAY`` on
every accepted TCP socket, so small events are not held back by Nagle's algorithm.

Graceful shutdown: stop accepting and close the listeners; ask every connection to end as its
phase allows (idle ones close, SSE streams end with a jittered ``retry:``, WebSockets get close
1001, plain responses in progress finish); after ``drain_timeout`` cancel what is left.

With ``reuse_port=True`` the listening sockets are made here with ``SO_REUSEPORT`` (Linux), so
several processes can listen on one port and the kernel spreads new connections between them
(``rawstream --workers N``, see :mod:`rawstream.server.workers`).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import ipaddress
import logging
import os
import signal
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import trio

from ..app import App
from ..logs import ConnectionInfo, current_connection
from ..request import HTTPError
from .config import Config
from .connection import Connection
from .h1 import H1Connection
from .keepalive import KeepaliveSweeper
from .readiness import ReadinessWatcher
from .timers import Timers

__all__ = ["Server", "ServerStatistics", "open_reuse_port_listeners", "reuse_port_option", "serve"]

log = logging.getLogger("rawstream.server")

#: Listen backlog of ``reuse_port`` sockets: as trio's own listeners, the most a 16-bit backlog
#: holds; the kernel lowers it to ``net.core.somaxconn``.
LISTEN_BACKLOG = 0xFFFF


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """The server's connections and traffic: open ones by phase (and by kind, which tells
    SSE streams, streamed bodies and WebSockets apart), totals since start."""

    connections: int
    connections_by_phase: dict[str, int]
    bytes_buffered: int  # queued for clients right now
    bytes_sent: int
    bytes_received: int
    events_dropped: int
    slow_consumers_disconnected: int
    time_blocked: float
    connections_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_buffered_max: int = 0  # queued for the one connection with the most, right now
    events_sent: int = 0  # SSE events and WebSocket messages queued for clients
    writes: int = 0  # socket writes: bytes_sent / writes is the coalescing at work
    connections_accepted: int = 0  # refused ones included
    connections_rejected: dict[str, int] = field(default_factory=dict)  # by reason


_ACCEPT_BACKOFF_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


def _peer(stream: trio.abc.Stream) -> tuple[str, int]:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        address = inner.socket.getpeername()
        return str(address[0]), int(address[1])
    return ("unknown", 0)


@functools.lru_cache(maxsize=4096)  # (parsing an address costs more than a connection's routing)
def client_key(address: str) -> str:
    """What the per-client cap counts by: an IPv4 address (an IPv4-mapped IPv6 one too), or
    the /64 network of an IPv6 address, since one IPv6 client usually holds a whole /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # (not an IP: a Unix socket, say)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _count_down(counts: dict[str, int], key: str) -> None:
    """One fewer for ``key``, whose entry goes at zero (so the table holds only live keys)."""
    if counts[key] > 1:
        counts[key] -= 1
    else:
        del counts[key]


def _listening_socket(listener: trio.abc.Listener[Any]) -> trio.socket.SocketType:
    if isinstance(listener, trio.SSLListener):
        listener = listener.transport_listener
    assert isinstance(listener, trio.SocketListener)
    return listener.socket


def reuse_port_option() -> int:
    """The ``SO_REUSEPORT`` socket option, or a clear error where the platform has none."""
    option: int | None = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        raise RuntimeError(
            "SO_REUSEPORT is not available on this platform: reuse_port (and --workers) needs Linux"
        )
    return option


async def open_reuse_port_listeners(host: str | None, port: int) -> list[trio.SocketListener]:
    """Listen on every address of ``host`` at ``port`` with ``SO_REUSEADDR`` and
    ``SO_REUSEPORT`` set, so other processes of the same user can listen on the same port.

    Linux then hashes each new connection to one of the listening sockets of the port (a socket
    that is bound but not listening gets none).  Like :func:`trio.open_tcp_listeners`, IPv6
    sockets are IPv6-only so IPv4 and IPv6 listeners coexist.
    """
    option = reuse_port_option()
    addresses = await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, type_, proto, _, sockaddr in dict.fromkeys(addresses):  # unique, in order
            sock = trio.socket.socket(family, type_, proto)
            try:
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
                sock.setsockopt(trio.socket.SOL_SOCKET, option, 1)
                if family == trio.socket.AF_INET6:
                    sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
                try:
                    await sock.bind(sockaddr)
                except OSError as exc:
                    where = f"{host or '*'}:{port}"
                    raise OSError(exc.errno, f"cannot bind {where}: {exc.strerror}") from exc
                sock.listen(LISTEN_BACKLOG)
                listeners.append(trio.SocketListener(sock))
            except BaseException:
                sock.close()
                raise
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


@dataclass
class _Totals:
    """What closed connections moved (live ones are summed on demand)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    events_dropped: int = 0
    time_blocked: float = 0.0
    events_sent: int = 0
    writes: int = 0

    def add(self, conn: H1Connection) -> None:  # (a closing one's counters, read directly)
        out = conn.outbox
        self.bytes_sent += out.bytes_sent
        self.bytes_received += conn.receiver.bytes_received
        self.events_dropped += out.items_dropped
        self.time_blocked += out.time_blocked
        self.events_sent += out.events_sent
        self.writes += out.writes


class Server:
    """A rawstream server for ``app``.

    Args:
        app: the routes to serve.
        config: limits and timeouts (defaults: :class:`Config`).
        ssl_context: serve TLS (https, wss) with this server-side context.
    """

    def __init__(
        self, app: App, config: Config | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.config = config or Config()
        self.ssl_context = ssl_context
        self.connections: set[Connection] = set()
        self.draining = False
        self.ports: list[int] = []
        #: Refused connections being answered (503 or 429) right now; at most max_connections.
        self._rejecting = 0
        #: Connections admitted (served, not refused) and still open: the max_connections
        #: count, kept by the accept loop itself so a burst of accepts cannot overshoot it.
        self._admitted = 0
        #: Admitted open connections by client key (:func:`client_key`), for the per-client
        #: cap; an entry goes at zero, so the table holds no more entries than connections.
        self._per_client: dict[str, int] = {}
        #: Refusals in flight per client key (bounded by the per-client cap when there is one).
        self._refusing_per_client: dict[str, int] = {}
        #: Sockets the listeners accepted, refused ones included (for metrics).
        self.connections_accepted = 0
        #: Accepted connections refused, by reason (for metrics): "overloaded" (answered 503,
        #: at max_connections), "per_client" (answered 429, at max_connections_per_client)
        #: and "closed_at_once" (closed unanswered: refusals were already at their bound).
        self.connections_rejected: collections.Counter[str] = collections.Counter()
        #: Streams ended because their client could not keep up (for metrics).
        self.slow_consumers_disconnected = 0
        self._closed_totals = _Totals()
        self._shutdown_requested = trio.Event()
        self._all_closed = trio.Event()
        self._drain_scope = trio.CancelScope()
        #: Sends SSE keepalive comments for every stream of this server.
        self.keepalive = KeepaliveSweeper(self.config.sse_keepalive)
        #: Waits for the sockets of idle streams, in place of a reading task for each.
        self.readiness = ReadinessWatcher()
        #: The connections' timeouts (waits for a request head), fired by one task.
        self.timers = Timers()
        self.connections_nursery: trio.Nursery | None = None  # (while serving: see tasks.py)

    def statistics(self) -> ServerStatistics:
        """Open connections by phase and kind, plus traffic totals (closed connections
        included), made now from each connection's counters (nothing is kept for it)."""
        live = [conn.statistics() for conn in self.connections]
        by_phase: dict[str, int] = {}
        by_kind: dict[str, int] = {}
        for stats in live:
            by_phase[stats.phase.value] = by_phase.get(stats.phase.value, 0) + 1
            by_kind[stats.kind] = by_kind.get(stats.kind, 0) + 1
        closed = self._closed_totals
        return ServerStatistics(
            connections=len(live),
            connections_by_phase=by_phase,
            bytes_buffered=sum(s.bytes_buffered for s in live),
            bytes_sent=closed.bytes_sent + sum(s.bytes_sent for s in live),
            bytes_received=closed.bytes_received + sum(s.bytes_received for s in live),
            events_dropped=closed.events_dropped + sum(s.events_dropped for s in live),
            slow_consumers_disconnected=self.slow_consumers_disconnected,
            time_blocked=closed.time_blocked + sum(s.time_blocked for s in live),
            connections_by_kind=by_kind,
            bytes_buffered_max=max((s.bytes_buffered for s in live), default=0),
            events_sent=closed.events_sent + sum(s.events_sent for s in live),
            writes=closed.writes + sum(s.writes for s in live),
            connections_accepted=self.connections_accepted,
            connections_rejected=dict(self.connections_rejected),
        )

    @property
    def port(self) -> int:
        """The first bound port (useful with ``port=0``)."""
        return self.ports[0]

    def shutdown(self) -> None:
        """Begin a graceful shutdown (see the module doc); :meth:`serve` returns when done."""
        self._shutdown_requested.set()

    async def serve(
        self,
        host: str | None = "127.0.0.1",
        port: int = 8000,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start the app's services, listen on ``host:port`` and serve until :meth:`shutdown`,
        then drain, stop the services and return.

        ``reuse_port``: listen with ``SO_REUSEPORT`` (Linux), so that other processes may
        listen on the same port and share its connections (see the module doc).
        """
        # Each service in its own nursery, nested in the previous one's: after the drain they
        # stop one at a time, last started first, each waited for before the next.  A service
        # others use (a hub, started first) so outlives them, and their cleanup can still use
        # it (the demo's tasks publish "cancelled" through the hub).
        async with contextlib.AsyncExitStack() as services:
            for service in self.app.services:  # before listening: a failure stops us here
                nursery = await services.enter_async_context(trio.open_nursery())
                await nursery.start(service)
                services.callback(nursery.cancel_scope.cancel)  # runs before the nursery exits
            services.callback(setattr, self, "connections_nursery", None)  # (once it ended)
            await self._listen_and_serve(host, port, task_status, reuse_port=reuse_port)

    async def _listen_and_serve(
        self,
        host: str | None,
        port: int,
        task_status: trio.TaskStatus[Server],
        *,
        reuse_port: bool = False,
    ) -> None:
        listeners: list[trio.abc.Listener[Any]] = list(
            await open_reuse_port_listeners(host, port)
            if reuse_port
            else await trio.open_tcp_listeners(port, host=host)
        )
        self.ports = [_listening_socket(listener).getsockname()[1] for listener in listeners]
        if self.ssl_context is not None:
            listeners = [
                trio.SSLListener(listener, self.ssl_context, https_compatible=True)
                for listener in listeners
            ]
        self._log_start(listeners, host)
        async with trio.open_nursery() as connections:
            self.connections_nursery = connections
            await connections.start(self.readiness.run)  # (cancelled once the drain is done)
            await connections.start(self.timers.run)
            try:
                async with trio.open_nursery() as acceptors:
                    acceptors.start_soon(self.keepalive.run)
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
                    task_status.started(self)
                    await self._shutdown_requested.wait()
                    acceptors.cancel_scope.cancel()
            finally:
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
            await self._drain(connections)

    def _log_start(self, listeners: list[trio.abc.Listener[Any]], host: str | None) -> None:
        """One line that says where the server listens and with which settings."""
        scheme = "https" if self.ssl_context else "http"
        addresses = [
            f"{scheme}://{'[' + ip + ']' if ':' in ip else ip}:{port}"
            for ip, port, *_ in (
                _listening_socket(listener).getsockname() for listener in listeners
            )
        ]
        settings = {name: getattr(self.config, name) for name in self.config.__dataclass_fields__}
        log.info(
            "rawstream listening on %s (pid %d); settings: %s",
            ", ".join(addresses),
            os.getpid(),
            " ".join(f"{name}={value}" for name, value in settings.items()),
            extra={"addresses": addresses, "settings": settings},
        )

    async def _drain(self, connections: trio.Nursery) -> None:
        self.draining = True
        log.info("draining %d connection(s)", len(self.connections))
        for conn in list(self.connections):
            conn.begin_shutdown()
        self._drain_scope.deadline = trio.current_time() + self.config.drain_timeout
        with self._drain_scope:
            while self.connections:
                await self._all_closed.wait()
                self._all_closed = trio.Event()
        if self.connections:
            log.info("cancelling %d connection(s) after the drain deadline", len(self.connections))
        connections.cancel_scope.cancel()

    async def _accept_loop(self, listener: trio.abc.Listener[Any], nursery: trio.Nursery) -> None:
        """Accept connections and admit each, refuse it with an answer, or close it at once.

        Every count the limits use is kept here, before the connection's task starts, so a
        burst of accepts cannot slip past a limit while earlier tasks wait for their turn.
        """
        config = self.config
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_BACKOFF_ERRNOS:
                    raise
                log.warning("accept failed (%s); backing off", errno.errorcode[exc.errno])
                await trio.sleep(0.1)
                continue
            self.connections_accepted += 1
            try:
                client = _peer(stream)
            except OSError:  # reset before we looked
                await trio.aclose_forcefully(stream)
                continue
            key = client_key(client[0])
            held = self._per_client.get(key, 0)
            cap = config.max_connections_per_client
            reject: HTTPError | None = None
            if cap is not None and held >= cap:  # this client's own limit: say so first
                reason = "per_client"
                reject = HTTPError(429, "too many connections from this client address")
            elif self._admitted >= config.max_connections:
                reason = "overloaded"
                reject = HTTPError(503, "server at its connection limit")
            if reject is None:
                self._admitted += 1
                self._per_client[key] = held + 1
            elif self._rejecting >= config.max_connections or (
                # A capped client gets at most ``cap`` answers in flight, so it cannot take
                # the refusal slots (and their tasks) everyone else's 503s need.
                cap is not None and self._refusing_per_client.get(key, 0) >= cap
            ):
                self.connections_rejected["closed_at_once"] += 1
                await trio.aclose_forcefully(stream)
                continue
            else:
                self.connections_rejected[reason] += 1
                self._rejecting += 1
                self._refusing_per_client[key] = self._refusing_per_client.get(key, 0) + 1
            nursery.start_soon(self._handle, stream, key, client, reject, name="connection")

    async def _handle(
        self,
        stream: trio.abc.Stream,
        key: str,
        client: tuple[str, int],
        reject: HTTPError | None,
    ) -> None:
        """Run one connection the accept loop admitted (``reject`` None) or refused, then
        give back the counts it took there."""
        try:
            try:
                conn = H1Connection(stream, client, self.app, self.config, self, reject=reject)
            except BaseException:  # (conn.run would have closed it)
                await trio.aclose_forcefully(stream)
                raise
            # Every log line written by this task and the ones it starts names the connection.
            current_connection.set(ConnectionInfo(conn.id, f"{client[0]}:{client[1]}"))
            if reject is None:
                self.connections.add(conn)
            log.debug("connection open")
            try:
                await conn.run()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.debug("client connection lost: %s", exc)
            except Exception:
                log.exception("connection failed")
            except BaseExceptionGroup as group:  # errors beside a cancellation: log, never swallow
                errors, rest = group.split(Exception)
                if errors is not None:
                    log.error("connection failed", exc_info=errors)
                if rest is not None:
                    raise rest from None
            finally:
                if reject is None:
                    self.connections.discard(conn)
                    self._closed_totals.add(conn)
                    self._all_closed.set()
                log.debug("connection closed")
        finally:
            if reject is not None:
                self._rejecting -= 1
                _count_down(self._refusing_per_client, key)
            else:
                self._admitted -= 1
                _count_down(self._per_client, key)

    async def close_on_signals(self, *signals: int) -> None:
        """Shut down gracefully on the first of ``signals`` (SIGINT, SIGTERM by default);
        a second one skips the rest of the drain."""
        with trio.open_signal_receiver(*(signals or (signal.SIGINT, signal.SIGTERM))) as received:
            async for signum in received:
                name = signal.Signals(signum).name
                if not self._shutdown_requested.is_set():
                    log.info("received %s: shutting down (again to stop at once)", name)
                    self.shutdown()
                else:
                    log.info("received %s again: stopping now", name)
                    self._drain_scope.cancel()


async def serve(
    app: App,
    *,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    config: Config | None = None,
    ssl_context: ssl.SSLContext | None = None,
    handle_signals: bool = False,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until shut down (by SIGINT/SIGTERM when ``handle_signals``).

    ``task_status.started`` receives the :class:`Server` once it listens, so
    ``server = await nursery.start(partial(serve, app, port=0))`` gives the bound port
    (``server.port``) and a handle to ``server.shutdown()``.  ``reuse_port`` listens with
    ``SO_REUSEPORT``, so several processes can serve one port (:meth:`Server.serve`).
    """
    server = Server(app, config, ssl_context=ssl_context)
    async with trio.open_nursery() as nursery:
        if handle_signals:
            nursery.start_soon(server.close_on_signals)
        await server.serve(host, port, reuse_port=reuse_port, task_status=task_status)
        nursery.cancel_scope.cancel()
