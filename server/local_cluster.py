"""A throwaway Redis Cluster on loopback ports: 3 primaries, each with 1 replica.

For the tests and the benchmark (``python -m bench --only cluster``), never for production.
Every node is a :class:`~server.local_redis.LocalRedis` (``redis-server``, persistence off,
diskless replication) with cluster mode on; ``redis-cli --cluster create ...
--cluster-replicas 1`` joins them. Each node's cluster configuration file (node ids and slot
ranges, no session content) lives in a private directory removed by :meth:`stop`.

``cluster-require-full-coverage no``: while one shard fails over, the other shards keep
serving (with ``yes``, every shard refuses commands until the failed slots are covered again).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

from .local_redis import LocalRedis, LocalRedisError, find_server_binary, free_port

NODE_TIMEOUT_MS = 2000  # a loaded test machine can stall a healthy node for a second
REPLICATION_ARGS = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                    "--repl-diskless-load", "on-empty-db")
WAIT = 60.0


class LocalCluster:
    """``primaries`` shards of one primary and ``replicas`` replicas each (sync API)."""

    def __init__(self, *, primaries: int = 3, replicas: int = 1,
                 node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.primary_count = primaries
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[LocalRedis] = []
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node (any one of them would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> LocalCluster:
        binary = find_server_binary(prefer="redis-server")
        cli = shutil.which("redis-cli")
        if cli is None:
            raise LocalRedisError("redis-cli is not on PATH (it creates the cluster)")
        self.dir = Path(tempfile.mkdtemp(prefix="partsboard-cluster-"))
        try:
            for _ in range(self.primary_count * (1 + self.replica_count)):
                self.nodes.append(self._node(binary).start())
            subprocess.run(
                [cli, "--cluster", "create",
                 *(f"127.0.0.1:{node.port}" for node in self.nodes),
                 "--cluster-replicas", str(self.replica_count), "--cluster-yes"],
                check=True, capture_output=True, timeout=WAIT)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _node(self, binary: Path) -> LocalRedis:
        assert self.dir is not None
        port, bus = free_port(), free_port()
        return LocalRedis(binary=binary, port=port, extra_args=(
            "--cluster-enabled", "yes",
            "--cluster-port", str(bus),
            "--cluster-config-file", str(self.dir / f"nodes-{port}.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            *REPLICATION_ARGS,
        ))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what the cluster looks like ---------------------------------------------------------

    def client(self, node: LocalRedis) -> redis.Redis:
        return redis.Redis(port=node.port, socket_timeout=5, socket_connect_timeout=5)

    def running(self) -> list[LocalRedis]:
        return [node for node in self.nodes if node.running]

    def primaries(self) -> list[LocalRedis]:
        """The running nodes that are primaries now (after failovers too)."""
        found = []
        for node in self.running():
            with self.client(node) as client:
                if client.execute_command("ROLE")[0] == b"master":
                    found.append(node)
        return found

    def node_of_slot(self, slot: int) -> LocalRedis:
        """The primary serving a hash slot, as the cluster says now."""
        by_port = {node.port: node for node in self.nodes}
        for node in self.running():
            with self.client(node) as client:
                for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return by_port[int(primary[1])]
        raise LookupError(f"no node serves slot {slot}")

    def keyslot(self, key: str) -> int:
        with self.client(self.running()[0]) as client:
            return int(client.execute_command("CLUSTER KEYSLOT", key))

    def node_of_key(self, key: str) -> LocalRedis:
        return self.node_of_slot(self.keyslot(key))

    def replicas_of(self, primary: LocalRedis) -> list[LocalRedis]:
        with self.client(primary) as client:
            replicas = client.execute_command("ROLE")[2]
        ports = {int(port) for _, port, _ in replicas}
        return [node for node in self.running() if node.port in ports]

    def healthy(self) -> bool:
        """Every running node says the cluster is ok; each primary has a replica in sync."""
        try:
            for node in self.running():
                with self.client(node) as client:
                    info = client.execute_command("CLUSTER INFO")
                    if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                        return False
            primaries = self.primaries()
            if len(primaries) != self.primary_count:
                return False
            for primary in primaries:
                with self.client(primary) as client:
                    replication = client.info("replication")
                online = [value for key, value in replication.items()
                          if key.startswith("slave") and isinstance(value, dict)
                          and value.get("state") == "online"]
                if len(online) < self.replica_count:
                    return False
            # Every node agrees on who serves what (a node that just came back learns late).
            views = set()
            for node in self.running():
                with self.client(node) as client:
                    views.add(tuple((s, e, int(p[1])) for s, e, p, *_ in sorted(
                        client.execute_command("CLUSTER SLOTS"))))
            return len(views) == 1
        except (redis.RedisError, OSError):
            return False

    def wait_healthy(self, within: float = WAIT) -> None:
        _eventually(self.healthy, "the cluster is ok, with a replica in sync per primary",
                    within)

    def move_slot(self, slot: int, target: LocalRedis) -> None:
        """Move a hash slot and its keys to another primary, as ``redis-cli --cluster
        reshard`` does: IMPORTING on the target, MIGRATING on the source, MIGRATE the keys
        in batches, then every primary learns the slot's new owner."""
        source = self.node_of_slot(slot)
        with self.client(source) as src, self.client(target) as dst:
            source_id = src.execute_command("CLUSTER MYID").decode()
            target_id = dst.execute_command("CLUSTER MYID").decode()
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                    "KEYS", *keys)
            dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        for primary in self.primaries():
            if primary not in (source, target):
                with self.client(primary) as client:
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        self.wait_healthy()

    def bring_back(self, node: LocalRedis) -> None:
        """Start a killed node again (same port and configuration file): it rejoins the
        cluster, as a replica of whoever took over its slots."""
        node.start()
        self.wait_healthy()


def _eventually(check: Callable[[], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise LocalRedisError(f"{what}: not within {within:.0f} s")
        time.sleep(0.05)
