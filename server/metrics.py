"""Prometheus metrics. Labels are op names and error codes only: never content."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily

from .loop_lag import GC_BUCKETS, LAG_BUCKETS

CONNECTIONS = Gauge("partsboard_connections", "Open websocket connections in this process")
COMMANDS = Counter("partsboard_commands_total", "Commands handled", ["op", "result"])
COMMIT_SECONDS = Histogram(
    "partsboard_commit_seconds", "Time from a command's arrival to its commit in Redis",
    # fine between 1 and 50 ms, where a p99 read from the buckets is compared with 3x another
    buckets=(0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02,
             0.025, 0.035, 0.05, 0.1, 0.25, 1.0),
)
COMMIT_CONFLICTS = Counter("partsboard_commit_conflicts_total", "Optimistic commit retries")
BUSY = Counter("partsboard_busy_total",
               "Commands answered busy: not committed in time, to be sent again")
EVENTS_OUT = Counter("partsboard_events_sent_total", "Event frames queued to connections")
DRAGS = Counter("partsboard_drags_total", "Live drag updates", ["result"])
BAD_FRAMES = Counter("partsboard_bad_frames_total", "Frames refused", ["code"])
CLOSES = Counter("partsboard_closes_total", "Connections closed by the server", ["code"])
SLOW_CONSUMERS = Counter("partsboard_slow_consumers_total", "Connections cut for not reading")
SERVER_BEHIND = Counter(
    "partsboard_send_queue_server_behind_total",
    "Send queues that filled while their socket still took frames (this process was behind; "
    "not cut)")
GAPS_FILLED = Counter("partsboard_gaps_filled_total", "Sequence gaps filled from the event log")
RESYNCS = Counter("partsboard_resyncs_total", "Feeds whose members had to resync")
RESUBSCRIBES = Counter("partsboard_resubscribes_total", "Pub/sub reconnections")
NOT_REPLICATED = Counter(
    "partsboard_commits_not_replicated_total",
    "Commits refused as not acknowledged: durable acks asked for replicas that did not confirm",
)
ROOMS_CREATED = Counter("partsboard_rooms_created_total", "Rooms created")
ROOMS_ENDED = Counter("partsboard_rooms_ended_total", "Rooms ended by a therapist")
LOOP_LAG = Histogram(
    "partsboard_event_loop_lag_seconds",
    "How late a timer ran after its due time: how long the event loop was held",
    buckets=LAG_BUCKETS,
)
LOOP_LAG_OFF_CPU = Histogram(
    "partsboard_event_loop_lag_off_cpu_seconds",
    "The part of each event-loop lag when the loop's thread provably did not run "
    "(descheduled, stolen by the hypervisor, or blocked in a system call)",
    buckets=LAG_BUCKETS,
)
GC_PAUSE = Histogram(
    "partsboard_gc_pause_seconds", "How long each garbage collection held the process",
    ["generation"], buckets=GC_BUCKETS,
)
DRAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class LightHistogram:
    """A histogram kept as plain counts and exported at scrape time, for the drag path: a
    drag costs the server tens of microseconds, and prometheus_client's observe (a lock and
    a linear bucket search, 2 to 4 µs) twice per drag would be a noticeable share of it.
    One event loop observes, so no lock is needed."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.name, self.documentation, self.bounds = name, documentation, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation)
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([], buckets, sum_value=self.total)
        yield family


DRAG_RELAY = LightHistogram(
    "partsboard_drag_relay_seconds",
    "From a drag frame decoded by its connection's reader to its send to each member who "
    "sees it, in this process (the wait for the reader's turn is not in it)",
    DRAG_BUCKETS,
)
_GC_PAUSES = tuple(GC_PAUSE.labels(str(generation)) for generation in range(3))


def gc_pause(generation: int, seconds: float) -> None:
    _GC_PAUSES[generation].observe(seconds)


@cache
def command_result(op: str, result: str) -> Any:
    """The counter child for one (op, result): op names and codes are a small fixed set."""
    return COMMANDS.labels(op, result)


@cache
def drag_result(result: str) -> Any:
    """The counter child for one drag result (looked up once, not on every drag)."""
    return DRAGS.labels(result)
