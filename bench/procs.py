"""The processes a benchmark runs (redis-server, the relay, the Partsboard server)
and what /proc says about them (psutil is not a dependency)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.local_cluster import LocalCluster
from server.local_redis import LocalRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the benchmark process dies, so a killed
    run leaves no servers behind (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


# ---- /proc readings -------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0.0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    # after the ")": state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB: resident now and its peak."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def children(pid: int) -> list[int]:
    """Every descendant of pid (scans /proc; the tree is small)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def renice(pids: list[int], nice: int) -> None:
    """Set the scheduling priority of processes (negative: ahead of others; needs root)."""
    if nice == 0:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)


def pin(pids: list[int], cpus: set[int]) -> None:
    """Keep processes (every thread of each) on these CPUs."""
    for pid in pids:
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in threads:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def shielded(cpu: int) -> Iterator[int]:
    """Move every task that may leave `cpu` off it for the duration: threads of the
    machine's other processes (this one's included, so what it starts inherits the rest) and
    kernel threads not bound to a CPU. What a measured server pinned there then shares its
    core with is what cannot move: per-CPU kernel work and interrupts. Yields how many
    tasks moved (those of other users need root)."""
    moved: list[tuple[int, set[int]]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{entry}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                allowed = os.sched_getaffinity(tid)
                if cpu in allowed and len(allowed) > 1:
                    os.sched_setaffinity(tid, allowed - {cpu})
                    moved.append((tid, allowed))
            except OSError:
                continue
    try:
        yield len(moved)
    finally:
        for tid, allowed in moved:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, allowed)


def py_spy(pid: int, out: Path, seconds: float,
           cpus: set[int] | None = None) -> subprocess.Popen[bytes]:
    """py-spy sampling a process for `seconds` into `out` (collapsed stacks, idle frames
    left out, without stopping the process); `python -m bench.profile` summarizes them."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "200", "--format",
                             "raw", "--nonblocking", "--duration", str(max(round(seconds), 1)),
                             "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    if cpus:
        pin([proc.pid], cpus)
    return proc


LAG_METRIC = "partsboard_event_loop_lag_seconds"
LAG_OFF_CPU_METRIC = "partsboard_event_loop_lag_off_cpu_seconds"
GC_METRIC = "partsboard_gc_pause_seconds"
DRAG_RELAY_METRIC = "partsboard_drag_relay_seconds"
COMMIT_METRIC = "partsboard_commit_seconds"


def metrics_texts(*ports: int) -> list[str]:
    """The servers' /metrics (those that answer)."""
    texts = []
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                        timeout=5) as response:
                texts.append(response.read().decode())
        except (OSError, urllib.error.URLError):
            continue
    return texts


def histogram(texts: list[str], metric: str) -> dict[float, float]:
    """A histogram from /metrics texts, summed over servers and labels: upper bound ->
    cumulative count (empty when no server has it)."""
    out: dict[float, float] = {}
    prefix = metric + "_bucket{"
    for text in texts:
        for line in text.splitlines():
            if line.startswith(prefix):
                labels, value = line[len(prefix):].rsplit("} ", 1)
                bound = float(labels.split('le="', 1)[1].split('"', 1)[0])
                out[bound] = out.get(bound, 0.0) + float(value)
    return out


def sample(texts: list[str], name: str) -> float:
    """A sample's value summed over servers: 'x_count{generation="2"}' names one series,
    'x_sum' sums every series of the name (whatever their labels)."""
    starts = (name + " ",) if "{" in name else (name + " ", name + "{")
    return sum(float(line.rsplit(" ", 1)[1]) for text in texts for line in text.splitlines()
               if line.startswith(starts))


def lag_between(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Lag samples taken between two readings: how many, the bucket bound under which
    50% and 99% of them fell, the largest bucket any reached, how many were over 50 ms, and
    the histogram (each bucket's upper bound in ms as text -> samples in that bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    n = counts[-1] if counts else 0.0
    if n <= 0:
        return {"n": 0, "p50": None, "p99": None, "max": None, "over_50ms": 0}

    def quantile(q: float) -> float:
        return next(b for b, c in zip(bounds, counts, strict=True) if c >= q * n)

    top = next(b for b, c in zip(bounds, counts, strict=True) if c >= n)
    over = n - next(c for b, c in zip(bounds, counts, strict=True) if b >= 0.05)
    below = [0.0, *counts[:-1]]
    buckets = {f"{b * 1000:g}": c - prev for b, c, prev in zip(bounds, counts, below,
                                                                strict=True)}
    return {"n": n, "p50": quantile(0.5) * 1000, "p99": quantile(0.99) * 1000,
            "max": top * 1000, "over_50ms": over, "buckets": buckets}


def _cpu_ticks(cpu: int | None) -> list[int]:
    """/proc/stat's ticks for the whole machine (or one of its CPUs): user, nice, system,
    idle, iowait, irq, softirq, steal."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    line = next(line for line in Path("/proc/stat").read_text().splitlines()
                if line.split(maxsplit=1)[0] == name)
    return [int(v) for v in line.split()[1:9]]


PROBE_LOOPS = 200_000


def speed_probe_us() -> float:
    """The CPU time (µs, best of three) a fixed piece of pure Python takes: the machine's
    speed. A virtual machine's can change within a run (a neighbour on the host) with no
    CPU time read as stolen (on one machine the relay's CPU per command went from 501 to
    1,168 µs within forty minutes)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        total = 0
        for i in range(PROBE_LOOPS):
            total += i * i % 7
        best = min(best, time.process_time() - t0)
    return best * 1e6


def machine_busy_seconds(cpu: int | None = None) -> float:
    """CPU seconds the whole machine (or one of its CPUs) has spent busy, all processes."""
    ticks = _cpu_ticks(cpu)
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / CLK_TCK


def machine_stolen_seconds(cpu: int | None = None) -> float:
    """CPU seconds the hypervisor took from this virtual machine (or one of its CPUs):
    time a process was ready to run there and could not. Counted in the busy time above."""
    return _cpu_ticks(cpu)[7] / CLK_TCK


@dataclass
class CpuMeter:
    """CPU used by a set of processes between start() and stop(), as cores busy."""

    pids: list[int]
    _cpu0: float = 0.0
    _t0: float = 0.0
    cores: float = 0.0
    seconds: float = 0.0

    def start(self) -> None:
        self._cpu0 = sum(cpu_seconds(p) for p in self.pids)
        self._t0 = time.monotonic()

    def stop(self) -> float:
        self.seconds = sum(cpu_seconds(p) for p in self.pids) - self._cpu0
        self.cores = self.seconds / max(time.monotonic() - self._t0, 1e-9)
        return self.cores


# ---- processes ------------------------------------------------------------

@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    ready_at: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pids(self) -> list[int]:
        return [self.pid, *children(self.pid)] if self.alive() else []

    def memory_kib(self) -> tuple[int, int]:
        """(RSS, peak RSS) of the process and its children, summed."""
        rss = hwm = 0
        for pid in self.pids():
            r, h = memory_kib(pid)
            rss += r
            hwm += h
        return rss, hwm

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait(check: object, what: str, service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{what} exited early:\n{service.tail()}")
        if check():  # type: ignore[operator]
            service.ready_at = time.time()
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s:\n{service.tail()}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Workdir:
    """A throwaway directory for logs; removed on close unless asked to keep it."""

    def __init__(self, keep: bool = False) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="partsboard-bench-"))
        self.keep = keep

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


class Redises:
    """The Redis of one system: one redis-server, or a cluster of 3 primaries and 3
    replicas (server.local_cluster), persistence off."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = LocalCluster().start() if cluster else None
        self.single = None if cluster else LocalRedis(prefer="redis-server").start()

    @property
    def url(self) -> str:
        return self.cluster.url if self.cluster is not None else self._single().url

    def _single(self) -> LocalRedis:
        assert self.single is not None
        return self.single

    @property
    def pids(self) -> list[int]:
        nodes = self.cluster.running() if self.cluster is not None else [self._single()]
        return [node.pid for node in nodes]

    def primary_ports(self) -> list[int]:
        if self.cluster is None:
            return [self._single().port]
        return [node.port for node in self.cluster.primaries()]

    def used_memory(self) -> int:
        """used_memory of the primaries (replicas hold the same again), in bytes."""
        if self.cluster is None:
            return redis_info_memory(self._single().port)
        return sum(redis_info_memory(port) for port in self.primary_ports())

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        else:
            self._single().stop()


def redis_info_memory(port: int) -> int:
    """used_memory of a redis-server, in bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO memory\r\n")
        data = b""
        while b"used_memory:" not in data or not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    return 0


THERAPIST_KEY = "bench-therapist-key"


# The systems a benchmark can run: what server each runs, how many processes, on what Redis.
SERVER_KIND = {"relay": "relay", "partsboard": "partsboard", "partsboard-2": "partsboard",
               "cluster": "partsboard"}
PROCESSES = {"relay": 1, "partsboard": 1, "partsboard-2": 2, "cluster": 2}


@dataclass
class Servers:
    """The server processes of one system, seen as one: the load spreads over their
    ports, kill9() kills the first (one process of several crashing), and start_server()
    starts whichever is not running."""

    services: list[Service]

    @property
    def port(self) -> int:
        return self.services[0].port

    @property
    def ports(self) -> list[int]:
        return [service.port for service in self.services]

    @property
    def ready_at(self) -> float:
        return max(service.ready_at for service in self.services)

    def pids(self) -> list[int]:
        return [pid for service in self.services for pid in service.pids()]

    def memory_kib(self) -> tuple[int, int]:
        rss = hwm = 0
        for service in self.services:
            r, h = service.memory_kib()
            rss += r
            hwm += h
        return rss, hwm

    def kill9(self) -> None:
        self.services[0].kill9()

    def stop(self) -> None:
        stop_all(*self.services)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(service.tail(lines) for service in self.services)


def servers(system: str, redis_url: str, workdir: Path,
            extra_env: dict[str, str] | None = None) -> Servers:
    """The server processes of a system (see SERVER_KIND, PROCESSES), not yet started."""
    return Servers([server_service(SERVER_KIND[system], redis_url, workdir,
                                   extra_env=extra_env)
                    for _ in range(PROCESSES[system])])


def server_service(kind: str, redis_url: str, workdir: Path, port: int | None = None,
                   extra_env: dict[str, str] | None = None) -> Service:
    """The relay (kind "relay") or Partsboard (kind "partsboard"), not yet started."""
    port = port or free_port()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if kind == "relay":
        argv = [sys.executable, "-m", "bench.relay", "--port", str(port), "--redis", redis_url]
    elif kind == "partsboard":
        argv = [sys.executable, "-m", "server"]
        env.update({"PORT": str(port), "HOST": "127.0.0.1", "REDIS_URL": redis_url,
                    "PARTSBOARD_THERAPIST_KEY": THERAPIST_KEY,
                    # capacity is measured, not the per-connection limits (the relay has none)
                    "PARTSBOARD_COMMAND_RATE": "1000", "PARTSBOARD_COMMAND_BURST": "2000",
                    "PARTSBOARD_DRAG_RATE": "1000"})
    else:
        raise ValueError(kind)
    env.update(extra_env or {})
    return Service(kind, argv, env, port, workdir / f"{kind}-{port}.log")


def start_server(service: Service | Servers, timeout: float = 30.0) -> None:
    """Start the server (each of them not running) and wait until /healthz answers."""
    for one in service.services if isinstance(service, Servers) else [service]:
        if one.alive():
            continue
        one.start()
        url = f"http://127.0.0.1:{one.port}/healthz"
        _wait(lambda url=url: http_ok(url), one.name, one, timeout)


def stop_all(*services: Service | Servers | None) -> None:
    for service in services:
        if service is not None:
            with contextlib.suppress(Exception):
                service.stop()
