"""The standard set: steady sweep, saturation, recovery storm, idle-room memory.

Each system (the relay, then Partsboard) gets its own throwaway redis-server,
its own server process and its own load generator processes; the figures of
both land side by side in one result document.
"""

from __future__ import annotations

import contextlib
import math
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .load import LoadGen, merge

SYSTEMS = ("relay", "partsboard")
SERVER_CPU, OTHER_CPU = 0, 1  # --pin
# A generator whose send lag p99 (ms) reaches this has its own delays in the measured
# latency (its CPU cannot tell: another task on its core delays it as well).
GENERATOR_LATE_MS = 1.0
# --cluster: Partsboard on one Redis (one process, then two) beside a 3-shard cluster (two)
CLUSTER_SYSTEMS = ("partsboard", "partsboard-2", "cluster")


@dataclass(frozen=True)
class Plan:
    sweep: tuple[int, ...] = (10, 100, 300, 1000)
    cmd_rate: float = 0.2  # committed commands per room per second
    drag_rate: float = 1.0  # drag updates per room per second (bursts of 10 at 10/s)
    step_seconds: float = 10.0
    drain: float = 5.0
    # saturation: offered messages in per second, over all rooms of the sweep's last step
    # up to where the relay fails too (4,183/s in was not enough on a fast machine)
    sat_cmd: tuple[float, ...] = (50, 100, 200, 300, 450, 650, 900, 1200, 1600, 2100, 2800,
                                  3600, 4600, 6000, 8000)
    sat_drag: tuple[float, ...] = (250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6500, 8000)
    sat_seconds: float = 4.0
    sat_p99_ms: float = 100.0
    idle_seconds: float = 5.0
    storm: bool = True
    storm_kill_after: float = 4.0
    storm_seconds: float = 20.0
    storm_drain: float = 60.0
    workers: int = 2
    # the fixed-rate shape (issue 13): rooms of three, one partner at a time sending at a
    # fixed rate, on freshly started servers; offered messages in per second over all rooms
    shape_rooms: int = 100
    shape_first: float = 200  # the first step right after the start (commands)
    # up to where both systems fail, so the command saturation ratio has a figure (on a
    # quiet machine neither failed 4,000/s), in steps fine enough near where each fails
    # (Partsboard about 3,000 to 4,500/s, the relay 5,000 to 6,500/s) for a ratio
    shape_cmd: tuple[float, ...] = (100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500,
                                    3000, 3500, 4000, 4500, 5000, 5750, 6500, 8000, 10000,
                                    13000)
    # drags: up to where Partsboard's core passes 80% (about 20,000/s on a fast machine)
    shape_drag: tuple[float, ...] = (200, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000,
                                     6500, 8000, 10000, 13000, 16000, 20000, 25000, 30000)
    shape_seconds: float = 5.0
    overload_factor: float = 2.0  # the overload step: this times the command saturation...
    overload_seconds: float = 10.0  # ...for this long
    overload_drain: float = 60.0

    @property
    def rooms(self) -> int:
        return self.sweep[-1]


STANDARD = Plan()
QUICK = Plan(sweep=(10, 50), step_seconds=4.0, drain=3.0, sat_cmd=(50, 100, 200, 400),
             sat_drag=(200, 400, 800), sat_seconds=2.0, storm_kill_after=2.0,
             storm_seconds=8.0, storm_drain=30.0, shape_rooms=50, shape_first=100,
             shape_cmd=(50, 100, 200, 400, 800), shape_drag=(100, 400, 1600),
             shape_seconds=3.0, overload_seconds=5.0, overload_drain=30.0)
TINY = Plan(sweep=(2,), step_seconds=2.0, drain=3.0, sat_cmd=(), sat_drag=(), storm=False,
            workers=1, shape_rooms=0)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90),
            "p99": pct(values, 99), "max": max(values) if values else None}


def digest(result: dict[str, Any]) -> dict[str, Any]:
    """A run's result without the raw samples."""
    checks = result.get("checks", {})
    return {
        "seconds": result["seconds"],
        "lat": {k: summary(v) for k, v in result["lat"].items()},
        "lag_p99": pct(result["lag"], 99),
        "sent": result["sent"],
        "lost": result["lost"],
        "dup": {k: result["counts"].get(f"dup_{k}", 0) for k in ("cmd", "drag")},
        "seq_gaps": checks.get("seq_gaps", 0),
        "seq_dups": checks.get("seq_dups", 0),
        "x_dups": checks.get("x_dups", 0),
        "unexpected_seqs": result["unexpected_seqs"],
        "unacked": result["unacked"],
        "errors": {k: v for k, v in checks.items() if k.startswith("error_")},
        "checks": checks,
        "counts": result["counts"],
        "connections": result["connections"],
        "dead": result["dead"],
        "handler_error": result["handler_error"],
        "details": result["details"],
        "caught_up_s": result.get("caught_up_s"),
        "delivered_s": result.get("delivered_s"),
        "presence_wrong": checks.get("presence_wrong", 0) + result.get("presence_wrong_end", 0),
    }


def loss(d: dict[str, Any], kinds: tuple[str, ...] = ("cmd", "drag")) -> int:
    return int(sum(d["lost"].get(k, 0) for k in kinds) + sum(d["dup"].get(k, 0) for k in kinds)
            + d["seq_gaps"] + d["seq_dups"] + d["x_dups"] + d["unexpected_seqs"] + d["unacked"])


class Bench:
    """One system under test: its redis, its server, its generators and meters."""

    def __init__(self, kind: str, plan: Plan, workdir: Path, log: Callable[[str], None],
                 nice: int = 0, pin: bool = False, profile: Path | None = None,
                 settle: bool = True) -> None:
        self.kind = kind
        # --profile: py-spy samples Partsboard's server during each fixed-rate step
        self.profile = profile if procs.SERVER_KIND[kind] == "partsboard" else None
        self.nice = nice
        self.pin = pin
        self.plan = plan
        self.log = log
        self.redis = procs.Redises(cluster=kind == "cluster")
        self.service = procs.servers(kind, self.redis.url, workdir)
        try:
            procs.start_server(self.service)
        except BaseException:
            self.redis.stop()
            raise
        procs.renice([*self.redis.pids, *self.service.pids()], nice)
        if settle:  # the RSS at start, once start-up is done (only the sweep reports it)
            time.sleep(1.0)
        self.base_rss_kib = self.service.memory_kib()[0]
        self.base_redis = self.redis.used_memory()
        try:
            server = procs.SERVER_KIND[kind]
            self.gen = LoadGen(server, self.service.ports, plan.workers,
                               key=procs.THERAPIST_KEY if server == "partsboard" else "")
        except BaseException:
            procs.stop_all(self.service)
            self.redis.stop()
            raise
        procs.renice(self.gen.pids, nice)
        self.pin_all()
        self.out: dict[str, Any] = {"kind": kind, "base_rss_mib": self.base_rss_kib / 1024,
                                    "steady": [], "saturation": {}, "shape": {}}
        self._opened = (0.0, 0)

    def pin_all(self) -> None:
        """--pin: the server alone on the first CPU; Redis and the generators on the other."""
        if self.pin:
            procs.pin(self.service.pids(), {SERVER_CPU})
            procs.pin([*self.redis.pids, *self.gen.pids], {OTHER_CPU})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.gen.close()
        procs.stop_all(self.service)
        with contextlib.suppress(Exception):
            self.redis.stop()

    def meters(self) -> dict[str, procs.CpuMeter]:
        meters = {"server": procs.CpuMeter(self.service.pids()),
                  "redis": procs.CpuMeter(self.redis.pids),
                  "generator": procs.CpuMeter(self.gen.pids)}
        for meter in meters.values():
            meter.start()
        return meters

    def measured(self, profile: str = "", **run: Any) -> dict[str, Any]:
        spy = (procs.py_spy(self.service.pids()[0], self.profile / f"{profile}.txt",
                            run["duration"], cpus={OTHER_CPU} if self.pin else None)
               if self.profile and profile else None)
        probe_us = procs.speed_probe_us()
        meters = self.meters()
        metrics0 = procs.metrics_texts(*self.service.ports)
        busy0, t0 = procs.machine_busy_seconds(), time.monotonic()
        core0 = procs.machine_busy_seconds(SERVER_CPU)
        stolen0 = procs.machine_stolen_seconds(SERVER_CPU if self.pin else None)
        self.gen.send(self.gen.run_requests(**run))
        # CPU over the sending part only, not the drain
        time.sleep(run["duration"])
        cpu = {k: m.stop() for k, m in meters.items()}
        if spy is not None:
            spy.wait(timeout=run["duration"] + 30)
        metrics1 = procs.metrics_texts(*self.service.ports)
        elapsed = time.monotonic() - t0

        def between(metric: str) -> dict[str, Any]:
            return procs.lag_between(procs.histogram(metrics0, metric),
                                     procs.histogram(metrics1, metric))

        gc_pauses = between(procs.GC_METRIC)
        gc_pauses.update(window_s=elapsed, **{
            key: procs.sample(metrics1, name) - procs.sample(metrics0, name)
            for key, name in (("seconds", procs.GC_METRIC + "_sum"),
                              ("full", procs.GC_METRIC + '_count{generation="2"}'))})
        busy = (procs.machine_busy_seconds() - busy0) / elapsed
        if self.pin:  # the server's core, with whatever else ran on it
            cpu["core"] = (procs.machine_busy_seconds(SERVER_CPU) - core0) / elapsed
        cpu["stolen"] = (procs.machine_stolen_seconds(SERVER_CPU if self.pin else None)
                         - stolen0) / elapsed
        cpu["machine"] = busy
        cpu["others"] = max(busy - cpu["server"] - cpu["redis"] - cpu["generator"], 0.0)
        result = merge(self.gen.gather(run["duration"] + run["drain"] + 120))
        d = digest(result)
        d["cpu"] = cpu
        d["probe_us"] = probe_us
        d["gc"] = gc_pauses
        for key, metric in (("loop_lag", procs.LAG_METRIC),
                            ("loop_lag_off_cpu", procs.LAG_OFF_CPU_METRIC), ("drag_relay",
                            procs.DRAG_RELAY_METRIC), ("commit", procs.COMMIT_METRIC)):
            d[key] = between(metric)
        d["rss_mib"], d["peak_rss_mib"] = (v / 1024 for v in self.service.memory_kib())
        d["wall"] = time.monotonic() - t0
        d["rate_in"] = sum(d["sent"].values()) / max(result["seconds"], 1e-9)
        d["rate_out"] = sum(s["n"] for k, s in d["lat"].items()
                            if k != "ack") / max(result["seconds"], 1e-9)
        return d

    def open(self, rooms: int) -> None:
        opened = self.gen.open(rooms)
        self._opened = (opened, self.service.memory_kib()[0])
        self.log(f"{self.kind}: {rooms} rooms open ({opened:.1f} s)")

    def steady(self, rooms: int) -> None:
        p = self.plan
        opened, rss = self._opened
        d = self.measured(cmd_rate=p.cmd_rate, drag_rate=p.drag_rate,
                          duration=p.step_seconds, drain=p.drain)
        d["rooms"] = rooms
        d["open_seconds"] = opened
        d["idle_rss_mib"] = rss / 1024
        self.out["steady"].append(d)
        self.log(f"  {self.kind} steady {rooms} rooms: cmd p99 {_ms(d['lat']['cmd']['p99'])} "
                 f"drag p99 {_ms(d['lat']['drag']['p99'])} loss {loss(d)} "
                 f"errors {d['errors'] or 0} cpu {_cpu(d['cpu'])}")

    def idle(self) -> None:
        """CPU with every room connected and nobody doing anything (heartbeats, sweeps,
        pings: the cost of merely holding the rooms)."""
        d = self.measured(cmd_rate=0.0, drag_rate=0.0, duration=self.plan.idle_seconds,
                          drain=0.5)
        self.out["idle"] = {"rooms": self.plan.rooms, "cpu": d["cpu"]}
        self.log(f"  {self.kind} idle {self.plan.rooms} rooms: cpu {_cpu(d['cpu'])}")

    def memory(self) -> None:
        rooms = self.plan.rooms
        connections = 3 * rooms
        delta_kib = self.out["steady"][-1]["idle_rss_mib"] * 1024 - self.base_rss_kib
        redis_delta = self.redis.used_memory() - self.base_redis
        self.out["memory"] = {
            "rooms": rooms, "connections": connections,
            "base_rss_mib": self.base_rss_kib / 1024,
            "rss_mib": self.out["steady"][-1]["idle_rss_mib"],
            "kib_per_connection": delta_kib / connections,
            "kib_per_room": delta_kib / rooms,
            "rooms_per_gib": (2**20) / (delta_kib / rooms) if delta_kib > 0 else None,
            "redis_kib_per_room": redis_delta / 1024 / rooms,
        }

    def saturated(self, what: str) -> bool:
        s = self.out["saturation"].get(what)
        return bool(s and s["saturated"])

    def saturation_step(self, what: str, rate: float) -> None:
        p = self.plan
        s = self.out["saturation"].setdefault(what, {"steps": [], "best": None,
                                                     "saturated": False})
        per_room = rate / p.rooms
        run: dict[str, Any] = ({"cmd_rate": per_room, "drag_rate": 0.0} if what == "cmd"
                               else {"cmd_rate": 0.0, "drag_rate": per_room})
        d = self.measured(**run, duration=p.sat_seconds, drain=p.drain)
        d["offered"] = rate
        p99 = d["lat"][what]["p99"]
        kept_up = (d["lag_p99"] or 0.0) <= 50.0  # the generator sent on time
        ok = (p99 is not None and p99 <= p.sat_p99_ms and loss(d, (what,)) == 0
              and not d["errors"] and kept_up)
        d["ok"] = ok
        d["generator_kept_up"] = kept_up
        s["steps"].append(d)
        if ok:
            s["best"] = d
        else:
            s["saturated"] = True
        self.log(f"  {self.kind} {what} {rate:.0f}/s: in {d['rate_in']:.0f}/s out "
                 f"{d['rate_out']:.0f}/s p99 {_ms(p99)} loss {loss(d, (what,))} "
                 f"errors {d['errors'] or 0} cpu {_cpu(d['cpu'])} ok={ok}")

    # ---- the fixed-rate shape (issue 13) ----------------------------------------------

    def shape_step(self, what: str, rate: float, label: str, seconds: float | None = None,
                   drain: float | None = None) -> dict[str, Any]:
        """One step of the fixed-rate shape: `rate` messages/s offered over all rooms."""
        p = self.plan
        per_room = rate / p.shape_rooms
        run = ({"cmd_rate": per_room, "drag_rate": 0.0} if what == "cmd"
               else {"cmd_rate": 0.0, "drag_rate": per_room})
        d = self.measured(**run, duration=seconds or p.shape_seconds,
                          drain=drain or p.drain, fixed=what, profile=f"{label}-{rate:.0f}")
        d["offered"] = rate
        d["what"] = what
        p99 = d["lat"][what]["p99"]
        kept_up = (d["lag_p99"] or 0.0) <= 50.0
        d["generator_kept_up"] = kept_up
        d["ok"] = (p99 is not None and p99 <= p.sat_p99_ms and loss(d, (what,)) == 0
                   and not d["errors"] and kept_up)
        self.out["shape"].setdefault(label, []).append(d)
        lag = d["loop_lag"]
        self.log(f"  {self.kind} {label} {what} {rate:.0f}/s: in {d['rate_in']:.0f}/s p50 "
                 f"{_ms(d['lat'][what]['p50'])} p99 {_ms(p99)} loss {loss(d, (what,))} "
                 f"errors {d['errors'] or 0} loop lag p99 {_ms(lag['p99'])} max "
                 f"{_ms(lag['max'])} cpu {_cpu(d['cpu'])} ok={d['ok']}")
        return d

    def settle(self, quiet: float = 0.1, most: float = 30.0) -> float:
        """Wait (at most `most` seconds) until the server uses under `quiet` cores over half
        a second, and return how long that took: a step past saturation leaves a backlog
        that the next step would otherwise inherit (the relay, which does not push back, was
        still delivering a failed step's messages 10 s later, and its next ramp failed its
        first step on them)."""
        t0 = time.monotonic()
        meter = procs.CpuMeter(self.service.pids())
        while time.monotonic() - t0 < most:
            meter.start()
            time.sleep(0.5)
            if meter.stop() < quiet:
                break
        waited = time.monotonic() - t0
        if waited > 1.0:
            self.log(f"  {self.kind}: server busy with an earlier step for {waited:.1f} s")
        return waited

    def ramp_step(self, what: str, rate: float) -> None:
        """A step of a ramp; one that fails, or one where the generator sent late (it
        measured its own delays, not the server's), is run once more and the second
        result counts (a burst of other work on a shared machine does not end the ramp
        or stand for the server's latency), the first kept beside it."""
        d = self.shape_step(what, rate, what)
        late = (d["lag_p99"] or 0.0) >= GENERATOR_LATE_MS
        if not d["ok"] or late:
            steps = self.out["shape"][what]
            steps.pop()
            self.settle()
            again = self.shape_step(what, rate, what)
            again["first_try"] = {"p99": d["lat"][what]["p99"], "cpu": d["cpu"],
                                  "ok": d["ok"], "lag_p99": d["lag_p99"]}

    def shape_saturation(self, label: str) -> float:
        """The highest rate of a ramp that passed (0 when none did)."""
        return max((d["offered"] for d in self.out["shape"].get(label, []) if d["ok"]),
                   default=0.0)

    def overload(self) -> None:
        """2x the command saturation for a while: busy answers, never internal ones; nothing
        acknowledged lost; presence right; how long until every member has caught up. The
        saturation is the rate the ramp failed at (on a shared machine the last step that
        passed can be well under what the server takes)."""
        p = self.plan
        failed = [d["offered"] for d in self.out["shape"].get("cmd", []) if not d["ok"]]
        saturation = min(failed, default=0.0) or self.shape_saturation("cmd") or max(p.shape_cmd)
        d = self.shape_step("cmd", p.overload_factor * saturation, "overload",
                            seconds=p.overload_seconds, drain=p.overload_drain)
        self.log(f"  {self.kind} overload: busy {d['checks'].get('error_busy', 0)} internal "
                 f"{d['checks'].get('error_internal', 0)} cut "
                 f"{d['checks'].get('closed_4408', 0)} presence wrong {d['presence_wrong']} "
                 f"members had every committed event after {d['delivered_s']} s, every "
                 f"command committed and delivered after {d['caught_up_s']} s")

    def storm(self) -> None:
        p = self.plan
        self.log(f"{self.kind}: recovery storm with {p.rooms} rooms "
                 f"({3 * p.rooms} connections)")
        run = {"cmd_rate": p.cmd_rate, "drag_rate": p.drag_rate, "duration": p.storm_seconds,
               "drain": p.storm_drain, "storm": True}
        self.gen.send(self.gen.run_requests(**run))
        time.sleep(p.storm_kill_after)
        t_kill = time.time()
        self.service.kill9()
        t_restart = time.time()
        procs.start_server(self.service)
        procs.renice(self.service.pids(), self.nice)
        self.pin_all()
        t_ready = self.service.ready_at
        result = merge(self.gen.gather(p.storm_seconds + p.storm_drain + 120))
        d = digest(result)
        resumed = [t for t in result["resumed_at"] if t >= t_kill]
        d.update({
            "rooms": p.rooms,
            "connections_total": 3 * p.rooms,
            "resumed": len(resumed),
            "restart_to_ready_s": t_ready - t_restart,
            "recovery_s": (max(resumed) - t_restart) if resumed else None,
            "recovery_from_ready_s": (max(resumed) - t_ready) if resumed else None,
            "p50_resume_s": (pct(resumed, 50) or t_restart) - t_restart if resumed else None,
        })
        self.out["storm"] = d
        self.log(f"  resumed {len(resumed)}/{3 * p.rooms} in {d['recovery_s']} s after restart; "
                 f"gaps {d['seq_gaps']} dups {d['seq_dups']} lost cmd "
                 f"{d['lost'].get('cmd', 0)} unacked {d['unacked']} checks {d['checks']}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in cpu.items())


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 2**20
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    redis_version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                       text=True, timeout=10).stdout.strip()
    import os

    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_gib, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "redis": redis_version, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


@dataclass
class Results:
    plan: dict[str, Any]
    machine: dict[str, Any]
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def run_shape(plan: Plan, workdir: Path, log: Callable[[str], None],
              systems: tuple[str, ...], nice: int, pin: bool,
              profile: Path | None = None) -> dict[str, dict[str, Any]]:
    """The fixed-rate shape on freshly started servers: the first step right after the
    start, the command and drag ramps, then the overload step."""
    benches: list[Bench] = []
    out: dict[str, dict[str, Any]] = {}
    try:
        for kind in systems:
            benches.append(Bench(kind, plan, workdir, log, nice, pin, profile, settle=False))
        for bench in benches:
            bench.open(plan.shape_rooms)
        for bench in benches:
            bench.shape_step("cmd", plan.shape_first, "first")
        for what, rates in (("cmd", plan.shape_cmd), ("drag", plan.shape_drag)):
            for bench in benches:
                bench.settle()
            for rate in rates:
                running = [b for b in benches
                           if all(d["ok"] for d in b.out["shape"].get(what, []))]
                if not running:
                    break
                for bench in running:
                    bench.ramp_step(what, rate)
        for bench in benches:
            bench.settle()
            bench.overload()
        for bench in benches:
            out[bench.kind] = bench.out["shape"]
    finally:
        for bench in benches:
            bench.close()
    return out


def run_all(plan: Plan, log: Callable[[str], None] = print, keep_logs: bool = False,
            systems: tuple[str, ...] = SYSTEMS, nice: int = 0, pin: bool = False,
            profile: Path | None = None) -> Results:
    """Both systems are up at once and every step is run on one, then on the other, so
    that both see the same (drifting) background load of a shared machine."""
    t0 = time.monotonic()
    results = Results(plan=asdict(plan), machine=machine())
    results.machine["nice"] = nice
    results.machine["pinned"] = pin
    workdir = procs.Workdir(keep=keep_logs)
    if keep_logs:
        log(f"server logs in {workdir.path}")
    benches: list[Bench] = []
    shape: dict[str, dict[str, Any]] = {}
    shield = contextlib.ExitStack()
    try:
        if pin:
            moved = shield.enter_context(procs.shielded(SERVER_CPU))
            log(f"CPU {SERVER_CPU} kept for the server: {moved} other tasks moved off it")
        if plan.shape_rooms:
            log(f"fixed-rate shape over {plan.shape_rooms} rooms, servers just started")
            shape = run_shape(plan, workdir.path, log, systems, nice, pin, profile)
        for kind in systems if plan.sweep else ():
            benches.append(Bench(kind, plan, workdir.path, log, nice, pin))
        if not plan.sweep:
            for kind in systems:
                results.systems[kind] = {"kind": kind, "steady": [], "saturation": {},
                                         "shape": shape.get(kind, {})}
        for rooms in plan.sweep:
            for bench in benches:
                bench.open(rooms)
            for bench in benches:
                bench.steady(rooms)
        for bench in benches:
            bench.memory()
            if plan.idle_seconds > 0:
                bench.idle()
        for what, rates in (("cmd", plan.sat_cmd), ("drag", plan.sat_drag)):
            for rate in rates:
                running = [b for b in benches if not b.saturated(what)]
                if not running:
                    break
                for bench in running:
                    bench.saturation_step(what, rate)
        if plan.storm:
            for bench in benches:
                bench.storm()
        for bench in benches:
            bench.out["server_log_tail"] = bench.service.tail(20)
            if plan.shape_rooms:
                bench.out["shape"] = shape[bench.kind]
            results.systems[bench.kind] = bench.out
    finally:
        for bench in benches:
            bench.close()
        workdir.close()
        shield.close()
    results.seconds = time.monotonic() - t0
    return results
