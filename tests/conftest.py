"""Fixtures shared by every test folder: a throwaway Redis and real server processes.

- ``redis_server`` (session): a :class:`server.local_redis.LocalRedis` on a free port (never
  6379). ``redis_url`` (function): its URL; or, parametrized indirectly with "sentinel" or
  "cluster", the URL of the session's Sentinel set or Redis Cluster (``redis_sentinel``,
  ``redis_cluster``: tests/redis_backends.py), so one test runs against any of them:
  ``@pytest.mark.parametrize("redis_url", BACKENDS, indirect=True)``.
- After every test that used ``redis_server``: every key must have a TTL (no room key ever
  lives without one), then FLUSHALL so tests stay independent. A test that killed Redis gets
  it started again first. The same for every node of the Sentinel set or cluster a test
  used; a cluster node a test killed is brought back, and the cluster must be healthy.
- ``server_factory`` (function): starts real ``python -m server`` processes against
  ``redis_url``; ``server``: one of them. All are stopped at teardown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from redis_backends import BACKENDS, LocalCluster, SentinelSet, node_urls

from server.local_redis import LocalRedis, die_with_parent, free_port

pytest_plugins = ["pytester"]  # tests of this harness run pytest on small inner suites

ROOT = Path(__file__).resolve().parents[1]
THERAPIST_KEY = "test-key"
SERVER_START_TIMEOUT = 20.0
SERVER_STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3


# -- Redis ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """One throwaway Redis for the whole session (persistence off, free port)."""
    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """One Sentinel set (master, replica, Sentinel) for the whole session."""
    found = SentinelSet.start(tmp_path_factory.mktemp("sentinel"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One Redis Cluster (3 primaries, 3 replicas) for the whole session."""
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: LocalRedis) -> Iterator[str]:
    backend = getattr(request, "param", "single")
    if backend == "single":
        yield redis_server.url
        return
    assert backend in BACKENDS, backend
    found: SentinelSet | LocalCluster = request.getfixturevalue(f"redis_{backend}")
    yield found.url
    if isinstance(found, LocalCluster):
        for node in found.nodes:
            if not node.running:
                found.bring_back(node)
        found.wait_healthy()
    primaries = []  # replicas copy them (and a cluster replica redirects reads)
    for url in node_urls(found.url):
        with redis.Redis.from_url(url) as client:
            if client.execute_command("ROLE")[0] == b"master":
                primaries.append(url)
    try:
        for url in primaries:
            untimed = keys_without_ttl(url)
            assert not untimed, f"keys without a TTL on {url}: {sorted(untimed)[:20]}"
    finally:
        for url in primaries:
            with redis.Redis.from_url(url) as client:
                client.flushall()


def keys_without_ttl(url: str) -> list[str]:
    """Every key that has no TTL, in every database of the Redis at ``url`` ("db<n>:" prefix
    for databases other than the URL's own)."""
    with redis.Redis.from_url(url) as client:
        own = int(client.connection_pool.connection_kwargs.get("db", 0))
        databases = [int(name[2:]) for name in client.info("keyspace")]
    untimed: list[str] = []
    for db in databases:
        prefix = "" if db == own else f"db{db}:"
        with redis.Redis.from_url(urlsplit(url)._replace(path=f"/{db}").geturl()) as client:
            untimed += [
                prefix + key.decode(errors="replace")
                for key in client.scan_iter(count=1000)
                if client.pttl(key) == -1
            ]
    return untimed


@pytest.fixture(autouse=True)
def _redis_keys_expire_and_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used redis_server: assert every key has a TTL, then FLUSHALL.

    Set up before (so torn down after) the test's own fixtures, servers included.
    """
    if "redis_server" not in request.fixturenames:
        yield
        return
    server: LocalRedis = request.getfixturevalue("redis_server")
    yield
    if not server.running:  # the test killed Redis and left it down
        server.start()
    try:
        untimed = keys_without_ttl(server.url)
        assert not untimed, f"keys without a TTL: {sorted(untimed)[:20]}"
    finally:
        with redis.Redis.from_url(server.url) as client:
            client.flushall()


# -- server processes ------------------------------------------------------------------------


class ServerProcess:
    """One real server process on a fixed port (kept across restarts)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        port: int,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        start_timeout: float = SERVER_START_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.port = port
        self.host = host
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def spawn(self) -> ServerProcess:
        """Start the process (appending to its log) without waiting for it."""
        assert not self.running, "server already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # no orphan servers if pytest itself dies
            )
        return self

    def start(self) -> ServerProcess:
        """Start the process and wait until GET /healthz answers 200."""
        self.spawn()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise ServerStartError(
                        f"server exited with {self.process.returncode} before /healthz "
                        f"answered; log tail:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServerStartError(
                        f"/healthz did not answer 200 within {self.start_timeout:.0f} s; "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def terminate(self, timeout: float = SERVER_STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful), SIGKILL after ``timeout``; returns the exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def kill(self) -> int | None:
        """SIGKILL at once (a crash); returns the exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return proc.wait()

    def restart(self) -> ServerProcess:
        """Stop (gracefully, if still running) and start again on the same port."""
        self.terminate()
        return self.start()

    async def astart(self) -> ServerProcess:
        """:meth:`start` without blocking the running event loop."""
        self.spawn()  # on the loop's thread: die_with_parent ties to the forking thread
        await asyncio.to_thread(self._wait_healthy)
        return self

    async def arestart(self) -> ServerProcess:
        """:meth:`restart` without blocking the running event loop."""
        await asyncio.to_thread(self.terminate)
        return await self.astart()


class ServerStartError(RuntimeError):
    pass


def _port_collision(proc: ServerProcess) -> bool:
    """The free port was taken by someone else meanwhile: worth another try on a new port."""
    return "address already in use" in proc.log_text().lower()


class ServerFactory:
    """``server_factory(env={...})`` starts a real server process and returns it, healthy.

    The base environment is: PORT (free), HOST=127.0.0.1, REDIS_URL=the test Redis,
    PARTSBOARD_THERAPIST_KEY="test-key". ``env`` adds to it; a value of None removes a
    variable (e.g. ``{"PARTSBOARD_THERAPIST_KEY": None}`` for dev mode). ``argv`` replaces
    ``python -m server`` (only for testing this harness itself).
    """

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.servers: list[ServerProcess] = []

    def __call__(
        self,
        env: Mapping[str, str | None] | None = None,
        *,
        argv: Sequence[str] | None = None,
        start: bool = True,
    ) -> ServerProcess:
        for attempt in range(PORT_ATTEMPTS):
            proc = self._make(env, argv)
            if not start:
                return proc
            try:
                return proc.start()
            except ServerStartError:
                if not _port_collision(proc) or attempt == PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def start(
        self,
        env: Mapping[str, str | None] | None = None,
        *,
        argv: Sequence[str] | None = None,
    ) -> ServerProcess:
        """``await server_factory.start(env)``: the same without blocking the event loop."""
        for attempt in range(PORT_ATTEMPTS):
            proc = self._make(env, argv)
            try:
                return await proc.astart()
            except ServerStartError:
                if not _port_collision(proc) or attempt == PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _make(
        self, env: Mapping[str, str | None] | None, argv: Sequence[str] | None
    ) -> ServerProcess:
        port = free_port()
        full: dict[str, str | None] = {
            **os.environ,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "REDIS_URL": self.redis_url,
            "PARTSBOARD_THERAPIST_KEY": THERAPIST_KEY,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        clean = {key: value for key, value in full.items() if value is not None}
        n = len(self.servers) + 1
        proc = ServerProcess(
            list(argv) if argv is not None else [sys.executable, "-m", "server"],
            clean,
            port,
            self.log_dir / f"server-{n}-port-{port}.log",
        )
        self.servers.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.servers:
            proc.terminate()


@pytest.fixture
def server_factory(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    factory = ServerFactory(redis_url, tmp_path_factory.mktemp("servers"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    """One real server process (``python -m server``), healthy, against the test Redis."""
    return server_factory()
