"""`python -m bench.redis_ops [--cluster [--durable-acks]]`: what one operation costs Redis.

Starts a throwaway Redis (or a 3-shard cluster) and two server processes, plays one room
step by step and reads Redis's own command counters (INFO commandstats, summed over the
primaries) around each step: what creating a room, a join, a command, a drag, a
heartbeat and a leave cost Redis, counted by Redis. Commands a Lua script runs are
counted too, under their own names (a commit is one EVALSHA round trip). The counts do
not depend on the machine; the batched command steps also give the mean round trip of
one command (sent one at a time, acknowledged, over loopback), which does: compare runs
on one machine, such as with and without `--durable-acks` (PARTSBOARD_DURABLE_ACKS=1:
every commit waits for a replica; a cluster has one per primary).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis

from client import Client
from client.http import create_room
from rooms.actions import NoteAdd, NoteEdit, PartAdd, PartMove, PartReveal, StageSet

from . import procs

KEY = procs.THERAPIST_KEY
PARTNERS = {"a": ("Ari", "#c2410c"), "b": ("Bo", "#0f766e")}


BATCH = 200  # commands (and drags) in the batched steps, which also give Redis CPU per one


@dataclass
class Row:
    label: str
    per: int  # operations in the step
    commands: Counter[str]
    redis_cpu_s: float
    seconds: float | None  # the step's wall time, when it is a sequence of round trips


class Meter:
    """Reads the primaries' command counters and CPU time (over connections of its own,
    opened once: their INFO calls are left out of what it counts)."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [redis.Redis(port=port) for port in ports]
        self.rows: list[Row] = []
        self.memory: list[tuple[str, int]] = []
        self._before = self.read()
        self._started = time.monotonic()

    def read(self) -> tuple[Counter[str], float]:
        total: Counter[str] = Counter()
        cpu = 0.0
        for client in self.clients:
            for name, stats in client.info("commandstats").items():
                total[name.removeprefix("cmdstat_")] += int(stats["calls"])
            info = client.info("cpu")
            cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return total, cpu

    def step(self, label: str, per: int = 1, timed: bool = False) -> None:
        seconds = time.monotonic() - self._started
        commands, cpu = self.read()
        delta = commands - self._before[0]
        for own in ("info", "replconf"):  # the counters' reads; replicas' acks
            delta.pop(own, None)
        self.rows.append(Row(label, per, delta, cpu - self._before[1],
                             seconds if timed else None))
        self._before = self.read()
        self._started = time.monotonic()

    def room_bytes(self, room: str) -> int:
        """MEMORY USAGE of every key of the room (on whichever primary holds it)."""
        total = 0
        for client in self.clients:
            for key in client.scan_iter(match=f"pb:{{{room}}}:*", count=1000):
                total += int(client.memory_usage(key, samples=0) or 0)
        self._before = (self.read()[0], self._before[1])  # these reads are not the room's
        return total

    def close(self) -> None:
        for client in self.clients:
            client.close()


async def play(bases: list[str], meter: Meter, heartbeat_s: float) -> None:
    created = await create_room(bases[0], key=KEY, partners=PARTNERS)
    meter.step("create a room (POST /api/rooms)")
    links = dict(created.links)
    meter.memory.append(("a room just created", meter.room_bytes(created.room)))
    therapist = await Client.connect(links["therapist"])
    meter.step("first join of a room in a process (hello to welcome)")
    a = await Client.connect(links["a"].replace(bases[0], bases[1]))
    meter.step("first join in the other process")
    b = await Client.connect(links["b"])
    meter.step("another join in a process that has the room")
    await therapist.wait_for(lambda _: therapist.presence == {"therapist": 1, "a": 1, "b": 1})
    await therapist.run(StageSet(stage=2))
    part = await a.create(PartAdd(name="Bench part", kind="manager"))
    await a.run(PartReveal(id=part))
    note = await therapist.create(NoteAdd(text="A note"))
    await b.wait_seq(therapist.seq)
    meter.step("(setting up: four commands)", 4)
    for n in range(BATCH):
        await a.run(PartMove(id=part, x=n / BATCH, y=0.5))
    await b.wait_seq(a.seq)
    meter.step("a command (part.move), delivered to both processes", BATCH, timed=True)
    for n in range(BATCH):
        await therapist.run(NoteEdit(id=note, text=f"Note {n}"))
    meter.step("a command from the process whose last event came from the other", BATCH,
               timed=True)
    for n in range(BATCH):
        await a.drag(part, n / BATCH, 0.25)
        await asyncio.sleep(0.005)  # within the drag rate (the limit drops the excess)
    await therapist.wait_for(lambda _: therapist.drags.get(part, {}).get("y") == 0.25
                             and therapist.drags[part]["x"] == (BATCH - 1) / BATCH)
    meter.step("a drag, with members on the other process", BATCH)
    events = therapist.seq
    meter.memory.append((f"the room after {events} events, three members present",
                         meter.room_bytes(created.room)))
    await asyncio.sleep(heartbeat_s)
    meter.step(f"{heartbeat_s:.0f} s of one open room where nobody acts (heartbeats, "
               "sweeps, pings of both processes)")
    await b.close()
    await therapist.wait_for(lambda _: therapist.presence.get("b") == 0)
    meter.step("a leave")
    for client in (therapist, a):
        await client.close()


def render(meter: Meter, kind: str) -> str:
    lines = [f"Redis commands per operation ({kind}; counted by Redis: INFO commandstats, "
             "and Redis CPU from INFO cpu for the batched steps):", "",
             "| operation | Redis commands | Redis CPU (us) | round trip (ms) "
             "| which (per operation) |",
             "|---|---:|---:|---:|---|"]
    for row in meter.rows:
        which = ", ".join(f"{name} {n / row.per:g}" for name, n in sorted(row.commands.items()))
        cpu = f"{row.redis_cpu_s / row.per * 1e6:.0f}" if row.per >= BATCH else "-"
        trip = f"{row.seconds / row.per * 1e3:.2f}" if row.seconds is not None else "-"
        lines.append(f"| {row.label} | {sum(row.commands.values()) / row.per:g} | {cpu} | "
                     f"{trip} | {which} |")
    lines += ["", "| Redis memory of | KiB |", "|---|---:|"]
    lines += [f"| {label} | {size / 1024:.1f} |" for label, size in meter.memory]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_ops", description=__doc__)
    parser.add_argument("--cluster", action="store_true", help="on a 3-shard cluster")
    parser.add_argument("--durable-acks", action="store_true",
                        help="every commit waits for a replica (needs --cluster: one Redis "
                             "has no replica here)")
    args = parser.parse_args(argv)
    if args.durable_acks and not args.cluster:
        parser.error("--durable-acks needs --cluster")
    system = "cluster" if args.cluster else "partsboard-2"
    workdir = procs.Workdir()
    redises = procs.Redises(cluster=args.cluster)
    servers = procs.servers(system, redises.url, Path(workdir.path), extra_env=(
        {"PARTSBOARD_DURABLE_ACKS": "1"} if args.durable_acks else None))
    try:
        procs.start_server(servers)
        meter = Meter(redises.primary_ports())
        bases = [f"http://127.0.0.1:{port}" for port in servers.ports]
        heartbeat_s = 15.0 / 3  # one presence heartbeat period (PARTSBOARD_PRESENCE_TTL / 3)
        try:
            asyncio.run(play(bases, meter, heartbeat_s))
        finally:
            meter.close()
        kind = "a cluster of 3 shards" if args.cluster else "one Redis"
        print(render(meter, kind + (", durable acks" if args.durable_acks else "")))
    finally:
        servers.stop()
        redises.stop()
        workdir.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
