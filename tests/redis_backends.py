"""The three kinds of Redis a server can use, started by the fixtures (tests/conftest.py).

- one Redis: :class:`server.local_redis.LocalRedis`;
- a Sentinel set (:class:`SentinelSet`): a master, a replica of it and one Sentinel
  process watching them as service ``pb`` (quorum 1, down after 2 s: with 500 ms a loaded
  test machine sometimes stalls a healthy Redis that long and Sentinel fails over by
  itself); diskless replication both ways, so nothing reaches a disk;
- a Redis Cluster: :class:`server.local_cluster.LocalCluster` (3 primaries, 3 replicas).

``admin(url)`` and ``async_admin(url)`` give a test a client of any of them (redis-py's own
for ``redis://``, the master for ``redis+sentinel://``, a ``RedisCluster`` for
``redis+cluster://``), and ``nodes(url)`` every node behind a URL, to check or clean them.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from server.local_cluster import LocalCluster
from server.local_redis import LocalRedis, die_with_parent, find_server_binary, free_port
from server.redis_urls import CLUSTER_SCHEMES, SENTINEL_SCHEME, parse_cluster_url

SERVICE = "pb"
WAIT = 30.0  # a guard against hangs, never a measured expectation
# Diskless both ways, no delay before a full sync: nothing reaches a disk, and the replica is
# in sync as soon as it starts.
MASTER_ARGS = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
REPLICA_ARGS = (*MASTER_ARGS, "--repl-diskless-load", "on-empty-db")
DOWN_AFTER_MS = 2000

# What ``redis_url`` may be parametrized with (indirectly): see tests/conftest.py.
BACKENDS = ["single", "sentinel", "cluster"]

__all__ = ["LocalCluster", "SentinelSet", "admin", "async_admin", "kill_subscribers",
           "node_urls", "scan_all"]


@dataclass
class SentinelSet:
    master: LocalRedis
    replica: LocalRedis
    port: int
    process: subprocess.Popen[bytes]
    dir: Path

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{SERVICE}"

    @classmethod
    def start(cls, workdir: Path) -> SentinelSet:
        """A master, its replica in sync, and a Sentinel that knows both."""
        master = LocalRedis(prefer="redis-server", extra_args=MASTER_ARGS)
        replica: LocalRedis | None = None
        process: subprocess.Popen[bytes] | None = None
        try:
            master.start()
            replica = LocalRedis(prefer="redis-server", extra_args=(
                *REPLICA_ARGS, "--replicaof", "127.0.0.1", str(master.port))).start()
            eventually(lambda: info(replica, "replication").get("master_link_status") == "up",
                       "the replica is in sync with the master")
            # Right after its first sync a replica gets the master's writes only once it has
            # acknowledged (about a second later): until then a failover would lose
            # everything. A replica that has run for a while is the case under test.
            eventually(lambda: streams(master), "the replica receives the master's writes")
            process, port = _start_sentinel(workdir, master.port)
            found = cls(master, replica, port, process, workdir)
            eventually(found.knows_the_replica, "Sentinel knows the replica")
            assert found.master_address() == ("127.0.0.1", master.port)
            return found
        except BaseException:
            _stop(process, replica, master)
            raise

    def stop(self) -> None:
        _stop(self.process, self.replica, self.master)

    def master_address(self) -> tuple[str, int]:
        with redis.Redis(port=self.port, socket_timeout=5) as sentinel:
            host, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def master_is_up(self) -> bool:
        """Sentinel sees the master it names as up (no failover under way)."""
        with redis.Redis(port=self.port, socket_timeout=5, decode_responses=True) as sentinel:
            state = sentinel.sentinel_master(SERVICE)
        return set(str(state["flags"]).split(",")) == {"master"}

    def knows_the_replica(self) -> bool:
        with redis.Redis(port=self.port, socket_timeout=5, decode_responses=True) as s:
            replicas = s.sentinel_slaves(SERVICE)
        return any(int(r["port"]) == self.replica.port and not r["is_sdown"]
                   and r.get("master-link-status") == "ok" for r in replicas)

    def nodes(self) -> list[LocalRedis]:
        return [node for node in (self.master, self.replica) if node.running]

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "sentinel.log").read_text(errors="replace")[-3000:]
        return ""


def info(node: LocalRedis, section: str) -> dict[str, Any]:
    with redis.Redis.from_url(node.url, socket_timeout=5) as client:
        return client.info(section)  # type: ignore[no-any-return]


def streams(master: LocalRedis) -> bool:
    """A write on the master reaches its replica (WAIT: the replica acknowledged it)."""
    with redis.Redis.from_url(master.url, socket_timeout=5) as client:
        client.set("pb:replication-probe", "1", px=60_000)
        if client.wait(1, 500) != 1:
            return False
        client.delete("pb:replication-probe")
        return True


def eventually(check: Callable[[], bool], what: str, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        time.sleep(0.05)


def _start_sentinel(workdir: Path, master_port: int) -> tuple[subprocess.Popen[bytes], int]:
    binary = find_server_binary(prefer="redis-server")
    for _ in range(3):
        port = free_port()
        conf = workdir / "sentinel.conf"  # Sentinel rewrites it: it must be writable
        conf.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {workdir}\n"
            "loglevel notice\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 2000\n"
        )
        with open(workdir / "sentinel.log", "ab") as log:
            process = subprocess.Popen(
                [str(binary), str(conf), "--sentinel"],
                cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent(),
            )

        def answers(port: int = port, process: subprocess.Popen[bytes] = process) -> bool:
            if process.poll() is not None:
                return True
            try:
                with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as s:
                    return bool(s.ping())
            except redis.ConnectionError:
                return False

        eventually(answers, "Sentinel answers PING", within=15)
        if process.poll() is None:
            return process, port
    raise AssertionError("Sentinel did not start: "
                         + (workdir / "sentinel.log").read_text(errors="replace")[-2000:])


def _stop(process: subprocess.Popen[bytes] | None, *nodes: LocalRedis | None) -> None:
    if process is not None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for node in nodes:
        if node is not None:
            node.stop()


# -- clients of any of them ---------------------------------------------------------------


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def admin(url: str) -> redis.Redis | RedisCluster:
    """A synchronous client of the Redis (the master, the cluster) behind ``url``."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster(startup_nodes=[ClusterNode(host, port)
                                           for host, port in parse_cluster_url(url).nodes])
    if scheme == SENTINEL_SCHEME:
        return redis.Redis.from_url(node_urls(url)[0])  # the master, now
    return redis.Redis.from_url(url)


def async_admin(url: str) -> aioredis.Redis | AsyncRedisCluster:
    """An asyncio client of the Redis (the master, the cluster) behind ``url``."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        return AsyncRedisCluster(startup_nodes=[
            AsyncClusterNode(host, port) for host, port in parse_cluster_url(url).nodes])
    if scheme == SENTINEL_SCHEME:
        return aioredis.Redis.from_url(node_urls(url)[0])  # the master, now
    return aioredis.Redis.from_url(url)


def scan_all(url: str, match: str) -> list[bytes]:
    """Every key matching ``match`` on every node behind ``url`` (primaries and replicas)."""
    found: list[bytes] = []
    for node_url in node_urls(url):
        with redis.Redis.from_url(node_url) as client:
            found += list(client.scan_iter(match=match, count=1000))
    return found


def kill_subscribers(url: str) -> int:
    """CLIENT KILL TYPE pubsub on every node behind ``url``: how many were killed."""
    killed = 0
    for node_url in node_urls(url):
        with redis.Redis.from_url(node_url) as client:
            killed += int(client.client_kill_filter(_type="pubsub"))
    return killed


def node_urls(url: str) -> list[str]:
    """A redis:// URL for every node behind ``url`` (a cluster's or Sentinel set's too)."""
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        first = parse_cluster_url(url).nodes[0]
        with redis.Redis(host=first[0], port=first[1]) as client:
            lines = client.execute_command("CLUSTER NODES")
        addresses = [value["node_id"] and address for address, value in lines.items()
                     if "fail" not in value["flags"]]
        return [f"redis://{address.split('@')[0]}/0" for address in addresses]
    if scheme == SENTINEL_SCHEME:
        sentinel_port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        with redis.Redis(port=sentinel_port) as sentinel:
            host, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            replicas = sentinel.sentinel_slaves(SERVICE)
        master = f"redis://{host.decode() if isinstance(host, bytes) else host}:{port}/0"
        return [master, *(f"redis://{r['ip']}:{r['port']}/0" for r in replicas
                          if not r["is_sdown"])]
    return [url]
