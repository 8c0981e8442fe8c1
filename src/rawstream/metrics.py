"""Prometheus metrics: ``GET /metrics`` in the text exposition format, version 0.0.4.

``add_metrics(app, hub=hub)`` adds the route.  Nothing is counted for metrics alone: every
value is read when the route is scraped, collector style, from what the server already keeps
(:meth:`Server.statistics <rawstream.server.Server.statistics>`: each connection's counters,
plain integers its outbox adds to once per write or per event), from the hub's channels
(:meth:`~rawstream.hub.Broker.subscriber_counts`) and from the process.  A scrape costs
a pass over the open connections; the write path pays nothing more than before.

The exposition writer is this module's own (:class:`MetricFamily`, :func:`render`): families
with ``# HELP`` and ``# TYPE``, label values escaped, floats as Prometheus reads them
(``+Inf``, ``-Inf``, ``NaN``).  It is about a hundred lines; the alternative, the
``prometheus-client`` package, would be a fourth runtime dependency (or an optional one the
demo's ``/metrics`` could not count on), and its registry of live metric objects is built
for code that updates metrics as things happen, which this server deliberately does not do.
docs/OBSERVABILITY.md lists every metric.

Each process answers for itself: with ``--workers N``, a scrape reaches whichever worker the
kernel hands the connection to, and ``rawstream_process_info`` says which (``pid``,
``worker``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from .app import App, Route
from .request import HTTPError, Request
from .response import Response

if TYPE_CHECKING:
    from .hub.broker import Broker
    from .server.server import ServerStatistics

log = logging.getLogger("rawstream.metrics")


@runtime_checkable
class _Reporting(Protocol):
    """What the metrics route needs of ``request.server`` (a :class:`~rawstream.server.Server`,
    or a stand-in with the same statistics)."""

    def statistics(self) -> ServerStatistics: ...


__all__ = [
    "CONNECTION_KINDS",
    "CONTENT_TYPE",
    "OTHER_CHANNELS",
    "REJECT_REASONS",
    "Collector",
    "MetricFamily",
    "MetricType",
    "add_metrics",
    "collect",
    "escape_help",
    "escape_label_value",
    "format_value",
    "hub_families",
    "process_families",
    "render",
    "server_families",
]

#: The ``Content-Type`` of the text exposition format this module writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Every value of ``rawstream_open_connections``'s ``kind`` label (each reported, 0 or not).
CONNECTION_KINDS = ("idle", "http", "sse", "stream", "websocket")
#: Reasons a connection is refused (``rawstream_connections_rejected_total``'s ``reason``):
#: each reported, 0 or not; another reason the server counts is reported too.
REJECT_REASONS = ("overloaded", "per_client", "closed_at_once")
#: The ``channel`` label of the series that sums channels beyond ``max_channel_series``: no
#: channel can have this name (parentheses are not allowed in one).
OTHER_CHANNELS = "(other)"

MetricType = Literal["counter", "gauge", "untyped"]
#: Something that makes metric families at scrape time (an app's own numbers, say).
Collector = Callable[[], Iterable["MetricFamily"]]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# -- the exposition writer ----------------------------------------------------------------------


@dataclass(slots=True)
class MetricFamily:
    """One metric: its name, type and help text, and its samples (a value per label set).

    A counter's name ends in ``_total``, as in Prometheus's own naming, and its samples carry
    that name.  Example::

        family = MetricFamily("app_jobs", "gauge", "Jobs waiting, by queue.")
        family.add(3, queue="mail")
    """

    name: str
    type: MetricType
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.type not in ("counter", "gauge", "untyped"):
            raise ValueError(f"invalid metric type {self.type!r}")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {self.name!r}")

    def add(self, value: float, /, **labels: str) -> MetricFamily:
        """Add a sample: ``value`` with ``labels`` (names as Prometheus allows them, not
        starting with ``__``; values any text).  Returns the family, for chaining."""
        for name in labels:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r}")
        if any(existing == labels for existing, _ in self.samples):
            raise ValueError(f"{self.name} already has a sample labelled {labels!r}")
        self.samples.append((labels, value))
        return self


def format_value(value: float) -> str:
    """A sample value as the format writes it: integers exactly, floats by ``repr`` (which
    Prometheus parses back to the same float), and ``+Inf``, ``-Inf``, ``NaN``."""
    if isinstance(value, int):  # (bool included: 0 or 1)
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """A label value as it goes between double quotes: backslash, double quote and line
    feed escaped (``\\\\``, ``\\"``, ``\\n``)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A ``# HELP`` text: backslash and line feed escaped (a double quote stays as is)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render(families: Iterable[MetricFamily]) -> str:
    """The text exposition of ``families``: ``# HELP`` and ``# TYPE`` for each, then its
    samples, one a line, the text ending with a line feed.

    Raises:
        ValueError: two families have the same name.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name!r} appears twice")
        seen.add(family.name)
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if labels:
                pairs = ",".join(
                    f'{name}="{escape_label_value(text)}"' for name, text in labels.items()
                )
                lines.append(f"{family.name}{{{pairs}}} {format_value(value)}")
            else:
                lines.append(f"{family.name} {format_value(value)}")
    lines.append("")
    return "\n".join(lines)


# -- what rawstream reports -------------------------------------------------------------------


def server_families(stats: ServerStatistics) -> list[MetricFamily]:
    """The server's metrics, from one :meth:`~rawstream.server.Server.statistics` snapshot."""
    connections = MetricFamily(
        "rawstream_open_connections",
        "gauge",
        "Open connections by what they are doing: idle (between requests), http (a plain "
        "request), sse, stream (a streamed body) or websocket.",
    )
    for kind in CONNECTION_KINDS:
        connections.add(stats.connections_by_kind.get(kind, 0), kind=kind)
    for kind, count in sorted(stats.connections_by_kind.items()):
        if kind not in CONNECTION_KINDS:  # (a kind added later still shows)
            connections.add(count, kind=kind)
    streams = sum(stats.connections_by_kind.get(kind, 0) for kind in ("sse", "stream", "websocket"))
    rejected = MetricFamily(
        "rawstream_connections_rejected_total",
        "counter",
        "Accepted connections refused by a limit, by reason: overloaded (503 at "
        "max_connections), per_client (429 at max_connections_per_client), closed_at_once "
        "(closed unanswered, refusals being at their own bound).",
    )
    for reason in REJECT_REASONS:
        rejected.add(stats.connections_rejected.get(reason, 0), reason=reason)
    for reason, count in sorted(stats.connections_rejected.items()):
        if reason not in REJECT_REASONS:
            rejected.add(count, reason=reason)
    return [
        connections,
        MetricFamily(
            "rawstream_open_streams",
            "gauge",
            "Open streams: SSE streams, streamed bodies and WebSockets.",
        ).add(streams),
        MetricFamily(
            "rawstream_connections_accepted_total",
            "counter",
            "Connections accepted from the listening sockets, refused ones included.",
        ).add(stats.connections_accepted),
        rejected,
        MetricFamily(
            "rawstream_events_sent_total",
            "counter",
            "SSE events and WebSocket messages handlers queued for clients (keepalive "
            "comments, pings and gap notices not included).",
        ).add(stats.events_sent),
        MetricFamily(
            "rawstream_events_dropped_total",
            "counter",
            "Events queued for a slow client and dropped unsent (drop_oldest policy).",
        ).add(stats.events_dropped),
        MetricFamily(
            "rawstream_slow_consumers_disconnected_total",
            "counter",
            "Streams ended because their client could not keep up (disconnect policy, or "
            "block past send_timeout).",
        ).add(stats.slow_consumers_disconnected),
        MetricFamily(
            "rawstream_sent_bytes_total",
            "counter",
            "Bytes written to client sockets.",
        ).add(stats.bytes_sent),
        MetricFamily(
            "rawstream_received_bytes_total",
            "counter",
            "Bytes read from client sockets.",
        ).add(stats.bytes_received),
        MetricFamily(
            "rawstream_writes_total",
            "counter",
            "Socket writes (one per batch drained from an outbox): sent bytes per write "
            "is the coalescing at work.",
        ).add(stats.writes),
        MetricFamily(
            "rawstream_send_blocked_seconds_total",
            "counter",
            "Seconds senders spent waiting for room in a full outbox.",
        ).add(stats.time_blocked),
        MetricFamily(
            "rawstream_outbox_bytes",
            "gauge",
            "Bytes queued for clients now, in every open connection's outbox.",
        ).add(stats.bytes_buffered),
        MetricFamily(
            "rawstream_outbox_largest_bytes",
            "gauge",
            "Bytes queued now for the one client with the most queued.",
        ).add(stats.bytes_buffered_max),
    ]


def hub_families(hub: Broker, *, max_channel_series: int = 100) -> list[MetricFamily]:
    """The hub's metrics: subscribers per channel (the ``max_channel_series`` channels with
    the most get a series each; the rest are summed under ``channel="(other)"``), channels
    held and health.

    Only channels with subscribers have a series: a channel's goes once its last subscriber
    leaves, so the series stay as many as the busiest channels, whatever the hub holds.
    """
    if max_channel_series < 0:
        raise ValueError(f"max_channel_series must be 0 or more, not {max_channel_series}")
    counts = hub.subscriber_counts()
    busiest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    subscribers = MetricFamily(
        "rawstream_hub_subscribers",
        "gauge",
        "Subscriptions to a hub channel in this process, live or catching up: the "
        f"{max_channel_series} busiest channels, the others summed as channel="
        f'"{OTHER_CHANNELS}".',
    )
    for name, count in busiest[:max_channel_series]:
        subscribers.add(count, channel=name)
    rest = busiest[max_channel_series:]
    if rest:
        subscribers.add(sum(count for _, count in rest), channel=OTHER_CHANNELS)
    return [
        subscribers,
        MetricFamily(
            "rawstream_hub_channels",
            "gauge",
            "Hub channels this process holds (with subscribers, or history kept in memory).",
        ).add(len(hub.channels)),
        MetricFamily(
            "rawstream_hub_healthy",
            "gauge",
            "1 while the hub works, 0 while it is degraded (e.g. Redis unreachable).",
        ).add(1 if hub.health().ok else 0),
    ]


def process_families() -> list[MetricFamily]:
    """The process's metrics, under the names Prometheus's client libraries use: start
    time, CPU time, resident memory and file descriptors (the last two where ``/proc``
    tells), and ``rawstream_process_info`` naming the process and worker."""
    from ._version import __version__
    from .logs import WORKER_ENV

    families = [
        MetricFamily(
            "rawstream_process_info",
            "gauge",
            "Always 1: which process answered (each worker of --workers N serves its own "
            "numbers) and its version.",
        ).add(
            1,
            pid=str(os.getpid()),
            worker=os.environ.get(WORKER_ENV, ""),
            version=__version__,
        ),
        MetricFamily(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
        ).add(_start_time()),
    ]
    times = os.times()
    families.append(
        MetricFamily(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        ).add(times.user + times.system)
    )
    resident = _resident_bytes()
    if resident is not None:
        families.append(
            MetricFamily(
                "process_resident_memory_bytes", "gauge", "Resident memory size in bytes."
            ).add(resident)
        )
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    else:
        families.append(
            MetricFamily("process_open_fds", "gauge", "Number of open file descriptors.").add(
                open_fds
            )
        )
    max_fds = _max_fds()
    if max_fds is not None:
        families.append(
            MetricFamily(
                "process_max_fds", "gauge", "Maximum number of open file descriptors."
            ).add(max_fds)
        )
    return families


def collect(
    stats: ServerStatistics,
    hub: Broker | None = None,
    *,
    max_channel_series: int = 100,
    collectors: Iterable[Collector] = (),
) -> list[MetricFamily]:
    """Every family ``/metrics`` reports: the server's, the hub's (if any), the process's,
    then those of ``collectors``."""
    families = server_families(stats)
    if hub is not None:
        families += hub_families(hub, max_channel_series=max_channel_series)
    families += process_families()
    names = {family.name for family in families}
    for collector in collectors:
        try:
            more = list(collector())
            clashes = names.intersection(family.name for family in more)
            if clashes:
                raise ValueError(f"metric names already reported: {sorted(clashes)}")
        except Exception:  # one broken collector must not cost the scrape everything else
            log.exception("metrics collector %r failed; its metrics are left out", collector)
            continue
        names.update(family.name for family in more)
        families.extend(more)
    return families


def add_metrics(
    app: App,
    path: str = "/metrics",
    *,
    hub: Broker | None = None,
    max_channel_series: int = 100,
    collectors: Iterable[Collector] = (),
) -> Route:
    """Serve this process's metrics at ``GET path`` in the Prometheus text format.

    Args:
        hub: report its subscribers per channel, channel count and health too.
        max_channel_series: channels that get a ``rawstream_hub_subscribers`` series of
            their own (the busiest); the others are summed in one.
        collectors: more families, made at each scrape (``() -> Iterable[MetricFamily]``);
            their names must differ from rawstream's.

    The route answers anyone who can reach it: serve it where only your scraper can (a
    private network), or wrap it.  Each scrape reads the numbers anew (nothing is cached),
    and costs a pass over the open connections.
    """
    if max_channel_series < 0:
        raise ValueError(f"max_channel_series must be 0 or more, not {max_channel_series}")
    extra = tuple(collectors)

    async def metrics(request: Request) -> Response:
        """The metrics of the server serving this request, as Prometheus text."""
        server = request.server
        if not isinstance(server, _Reporting):  # (a request made by hand, outside a server)
            raise HTTPError(500, "no server to report on")
        families = collect(
            server.statistics(), hub, max_channel_series=max_channel_series, collectors=extra
        )
        return Response(
            render(families), content_type=CONTENT_TYPE, headers=[("cache-control", "no-store")]
        )

    return app.add_route(path, metrics)


# -- reading the process ------------------------------------------------------------------------

_start: float | None = None


def _start_time() -> float:
    """When this process started (Linux: from ``/proc``, exact; elsewhere: when this was
    first asked, which a server does at its first scrape), read once."""
    global _start
    if _start is None:
        _start = _proc_start_time() or time.time()
    return _start


def _proc_start_time() -> float | None:
    try:
        with open("/proc/self/stat", "rb") as stat:
            # Field 22, start time in clock ticks since boot; the name (field 2) may hold
            # spaces and parentheses, so count from the last ")".
            ticks = int(stat.read().rpartition(b")")[2].split()[19])
        with open("/proc/stat", "rb") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _max_fds() -> int | None:
    try:
        import resource
    except ImportError:  # (not on Windows)
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft
