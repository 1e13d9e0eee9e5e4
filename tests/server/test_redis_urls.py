"""REDIS_URL forms (server/redis_urls.py): parsing, the pools they build, clear refusals.

The Sentinel pool against real Sentinel processes, failover included, is tested in
tests/faults/test_sentinel.py; the cluster client against a real cluster in
tests/faults/test_cluster.py.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import DataError

from server.local_redis import LocalRedis
from server.redis_urls import (
    BlockingSentinelConnectionPool,
    ClusterTarget,
    SentinelTarget,
    WaitingRedisCluster,
    closed_transport,
    hiredis_packed,
    make_client,
    parse_cluster_url,
    parse_sentinel_url,
)

SECRET = "s3cret-Pa55"


# -- parsing redis+sentinel:// --------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://127.0.0.1:26380/pb",
     SentinelTarget(sentinels=(("127.0.0.1", 26380),), service_name="pb")),
    ("redis+sentinel://s1.example:1,s2.example:2,s3.example:3/pb/4",
     SentinelTarget(sentinels=(("s1.example", 1), ("s2.example", 2), ("s3.example", 3)),
                    service_name="pb", db=4)),
    ("redis+sentinel://sentinel.example/pb/",
     SentinelTarget(sentinels=(("sentinel.example", 26379),), service_name="pb")),
    ("redis+sentinel://[::1]:5000,[fe80::2]/pb/0/",
     SentinelTarget(sentinels=(("::1", 5000), ("fe80::2", 26379)), service_name="pb")),
    ("REDIS+SENTINEL://h:7/my%2Dmaster",
     SentinelTarget(sentinels=(("h", 7),), service_name="my-master")),
    ("redis+sentinel://partsboard:p%40ss%3Aword%2F%23@h:7/pb/1",
     SentinelTarget(sentinels=(("h", 7),), service_name="pb", db=1,
                    username="partsboard", password="p@ss:word/#")),
    ("redis+sentinel://:only-a-password@h:7/pb",
     SentinelTarget(sentinels=(("h", 7),), service_name="pb", password="only-a-password")),
    ("redis+sentinel://just-a-user@h:7/pb",
     SentinelTarget(sentinels=(("h", 7),), service_name="pb", username="just-a-user")),
    ("redis+sentinel://h:7/pb?sentinel_password=sp%26x&sentinel_username=watcher",
     SentinelTarget(sentinels=(("h", 7),), service_name="pb",
                    sentinel_username="watcher", sentinel_password="sp&x")),
])
def test_sentinel_urls_parse(url: str, expected: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == expected


def test_a_parsed_url_does_not_show_its_passwords() -> None:
    target = parse_sentinel_url(
        f"redis+sentinel://u:{SECRET}@h:7/pb?sentinel_password={SECRET}x")
    assert target.password == SECRET and target.sentinel_password == SECRET + "x"
    assert SECRET not in repr(target)


BAD_SENTINEL_URLS = [
    "redis+sentinel://",
    "redis+sentinel:///pb",
    "redis+sentinel://h:7",
    "redis+sentinel://h:7/",
    "redis+sentinel://h:7//0",
    "redis+sentinel://h:0/pb",
    "redis+sentinel://h:65536/pb",
    "redis+sentinel://h:port/pb",
    "redis+sentinel://h:/pb",
    "redis+sentinel://h:-1/pb",
    "redis+sentinel://h:٣/pb",
    "redis+sentinel://h1,,h2/pb",
    "redis+sentinel://h1,/pb",
    "redis+sentinel://::1:26379/pb",
    "redis+sentinel://[::1/pb",
    "redis+sentinel://[::1]x/pb",
    "redis+sentinel://[]:1/pb",
    "redis+sentinel://h:7/pb/x",
    "redis+sentinel://h:7/pb/-1",
    "redis+sentinel://h:7/pb/0/1",
    "redis+sentinel://h:7/%20",
    "redis+sentinel://h:7/pb?db=1",
    "redis+sentinel://h:7/pb?sentinel_password=a&sentinel_password=b",
    "redis+sentinel://h:7/pb?novalue",
    "redis+sentinel://h:7/pb#fragment",
    "redis+sentinel://h%20x:7/pb",
]


@pytest.mark.parametrize("url", BAD_SENTINEL_URLS)
def test_malformed_sentinel_urls_are_refused_without_quoting_secrets(url: str) -> None:
    # Put a password everywhere it could be: in the user info and in the query.
    secret_url = url.replace("://", f"://user:{SECRET}@", 1)
    if "?" in url:
        secret_url += f"&x={SECRET}"
    for candidate in (url, secret_url):
        with pytest.raises(ValueError, match="REDIS_URL") as refused:
            parse_sentinel_url(candidate)
        assert SECRET not in str(refused.value)
        assert refused.value.__cause__ is None
        with pytest.raises(ValueError, match="REDIS_URL") as refused:
            make_client(candidate, pool_size=4, timeout=1.0)
        assert SECRET not in str(refused.value)


@pytest.mark.parametrize("url", [
    "",
    "localhost:6379",
    f"user:{SECRET}@localhost:6379",
    f"sentinel://user:{SECRET}@h:26379/pb",
    f"http://user:{SECRET}@h/",
    f"redis+shards://user:{SECRET}@h:7000",
])
def test_unsupported_schemes_are_refused_without_quoting_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel://") as refused:
        make_client(url, pool_size=4, timeout=1.0)
    assert SECRET not in str(refused.value)
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


@pytest.mark.parametrize("url", [
    f"redis://user:{SECRET}@localhost:port/0",
    f"redis://user:{SECRET}@localhost:99999/0",
    f"redis://user:{SECRET}@[::1/0",
    f"redis://user:{SECRET}@localhost:6379/0?socket_timeout=soon",
    f"rediss://user:{SECRET}@localhost:6379/0?max_connections=many",
])
def test_malformed_plain_urls_are_refused_without_quoting_secrets(url: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL") as refused:
        make_client(url, pool_size=4, timeout=1.0)
    assert SECRET not in str(refused.value)
    assert refused.value.__cause__ is None


# -- parsing redis+cluster:// ---------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+cluster://127.0.0.1:7000",
     ClusterTarget(nodes=(("127.0.0.1", 7000),))),
    ("redis+cluster://n1.example:7000,n2.example,[::1]:7002/",
     ClusterTarget(nodes=(("n1.example", 7000), ("n2.example", 6379), ("::1", 7002)))),
    ("REDISS+CLUSTER://app:p%40ss@n1.example:7000",
     ClusterTarget(nodes=(("n1.example", 7000),), tls=True, username="app",
                   password="p@ss")),
    ("redis+cluster://:only-a-password@h:7",
     ClusterTarget(nodes=(("h", 7),), password="only-a-password")),
])
def test_cluster_urls_parse(url: str, expected: ClusterTarget) -> None:
    assert parse_cluster_url(url) == expected
    assert SECRET not in repr(parse_cluster_url(f"redis+cluster://u:{SECRET}@h:7"))


@pytest.mark.parametrize("url", [
    "redis+cluster://",
    "redis+cluster://h:7/0",
    "redis+cluster://h:7/pb",
    "redis+cluster://h:7?read_from_replicas=yes",
    "redis+cluster://h:7,,h:8",
    "redis+cluster://h:0",
    "redis+cluster://h:port",
    "redis+cluster://::1:7",
    "redis+cluster://[::1:7",
    "redis+cluster://h:7#fragment",
])
def test_malformed_cluster_urls_are_refused_without_quoting_secrets(url: str) -> None:
    secret_url = url.replace("://", f"://user:{SECRET}@", 1)
    for candidate in (url, secret_url):
        for parse in (parse_cluster_url,
                      lambda u: make_client(u, pool_size=4, timeout=1.0)):
            with pytest.raises(ValueError, match=r"not a valid redis\+cluster") as no:
                parse(candidate)
            assert SECRET not in str(no.value)
            assert no.value.__cause__ is None


async def test_cluster_urls_get_a_waiting_cluster_client() -> None:
    client = make_client(f"rediss+cluster://app:{SECRET}@10.0.0.1:7000,10.0.0.2:7001",
                         pool_size=6, timeout=2.0)
    try:
        assert isinstance(client, WaitingRedisCluster)
        assert [(n.host, n.port) for n in client.startup_nodes] == [
            ("10.0.0.1", 7000), ("10.0.0.2", 7001)]
        kwargs = client.connection_kwargs
        assert kwargs["max_connections"] == 6 and kwargs["socket_connect_timeout"] == 2.0
        assert kwargs["username"] == "app" and kwargs["password"] == SECRET
        assert kwargs["connection_class"] is SSLConnection
        assert client.pool_size == 6
        node = client.node_client("10.0.0.3", 7005, pool_size=2)
        pool = node.connection_pool
        assert isinstance(pool, BlockingConnectionPool) and pool.max_connections == 2
        assert issubclass(pool.connection_class, SSLConnection)
        assert pool.connection_kwargs["password"] == SECRET
        await node.aclose()
    finally:
        await client.aclose()


def test_a_pool_needs_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="pool size"):
        make_client("redis://localhost:6380/0", pool_size=0, timeout=1.0)


# -- the pools built ------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "connection_class", "where"), [
    ("redis://u:pw@db.example:6390/3", Connection, {"host": "db.example", "port": 6390, "db": 3}),
    ("rediss://db.example:6390/0", SSLConnection, {"host": "db.example", "port": 6390}),
    ("unix:///run/redis.sock?db=2", UnixDomainSocketConnection,
     {"path": "/run/redis.sock", "db": 2}),
])
async def test_plain_urls_get_a_waiting_pool(url: str, connection_class: type,
                                             where: dict[str, object]) -> None:
    client = make_client(url, pool_size=7, timeout=2.5)
    try:
        pool = client.connection_pool
        assert type(pool) is BlockingConnectionPool
        assert pool.max_connections == 7 and pool.timeout == 2.5
        assert pool.connection_class is hiredis_packed(connection_class)
        kwargs = pool.connection_kwargs
        assert kwargs["socket_connect_timeout"] == 2.5
        assert kwargs["health_check_interval"] == 30
        assert {key: kwargs[key] for key in where} == where
        assert client.auto_close_connection_pool  # closing the client closes its pool
    finally:
        await client.aclose()


async def test_sentinel_urls_get_a_waiting_sentinel_pool() -> None:
    client = make_client(
        f"redis+sentinel://app:{SECRET}@127.0.0.1:26390,127.0.0.2:26391/pb/5"
        f"?sentinel_password=watch-{SECRET}",
        pool_size=9, timeout=1.5)
    try:
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelConnectionPool)
        assert pool.service_name == "pb" and pool.is_master
        assert pool.max_connections == 9 and pool.timeout == 1.5
        assert pool.connection_class is hiredis_packed(SentinelManagedConnection)
        kwargs = pool.connection_kwargs
        assert kwargs["db"] == 5 and kwargs["username"] == "app" and kwargs["password"] == SECRET
        assert kwargs["socket_connect_timeout"] == 1.5 and kwargs["health_check_interval"] == 30
        sentinels = pool.sentinel_manager.sentinels
        assert [(s.connection_pool.connection_kwargs["host"],
                 s.connection_pool.connection_kwargs["port"]) for s in sentinels] == [
            ("127.0.0.1", 26390), ("127.0.0.2", 26391)]
        for sentinel in sentinels:
            sentinel_kwargs = sentinel.connection_pool.connection_kwargs
            assert sentinel_kwargs["password"] == f"watch-{SECRET}"
            assert sentinel_kwargs["socket_timeout"] == 1.5
        assert SECRET not in repr(pool)
        assert client.auto_close_connection_pool
    finally:
        await client.aclose()


def test_the_sentinel_pool_waits_like_the_blocking_pool_and_finds_the_master_like_sentinel() -> (
        None):
    pool = BlockingSentinelConnectionPool
    assert pool.__mro__[1:4] == (SentinelConnectionPool, BlockingConnectionPool, ConnectionPool)
    # Waiting for a free connection: the blocking pool's, not ConnectionPool's raising ones.
    assert pool.get_connection is BlockingConnectionPool.get_connection
    assert pool.release is BlockingConnectionPool.release
    # Master discovery and the Sentinel-managed connections: the Sentinel pool's.
    assert pool.get_master_address is SentinelConnectionPool.get_master_address
    assert pool.__init__ is SentinelConnectionPool.__init__
    assert pool.owns_connection is SentinelConnectionPool.owns_connection


# -- against the session's real Redis -------------------------------------------------------


async def test_a_plain_pool_queues_callers_beyond_its_size(redis_server: LocalRedis) -> None:
    client = make_client(redis_server.url, pool_size=2, timeout=10.0)
    try:
        # Eight callers, each holding a connection for a moment (BLPOP on an empty list
        # times out after 0.1 s): a non-waiting pool would refuse the third at once.
        answers = await asyncio.gather(*(client.blpop([f"nothing:{n}"], timeout=0.1)
                                         for n in range(8)))
        assert answers == [None] * 8
        assert len(client.connection_pool._available_connections) == 2
    finally:
        await client.aclose()


async def test_closing_the_client_closes_its_connections(redis_server: LocalRedis) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    client = make_client(redis_server.url, pool_size=4, timeout=5.0)
    try:
        await client.client_setname("pb-url-test")
        assert await client.ping()
        names = [c["name"] for c in await admin.client_list()]
        assert "pb-url-test" in names
        await client.aclose()
        for _ in range(500):  # the server notices the closed socket a moment later
            if "pb-url-test" not in [c["name"] for c in await admin.client_list()]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the client's connection stayed open after aclose()")
    finally:
        await client.aclose()
        await admin.aclose()


def test_commands_are_packed_by_hiredis_into_the_same_bytes() -> None:
    packed = hiredis_packed(Connection)
    assert packed is hiredis_packed(Connection) and issubclass(packed, Connection)
    args = ("EVALSHA", b"f00", 3, "room:k", "é", b"\x00\xff", 1.5, 0.1, 10**20, -3, 1e-7,
            memoryview(b"xy"))
    by_hiredis = packed().pack_command(*args)
    assert len(by_hiredis) == 1
    assert by_hiredis[0] == b"".join(bytes(chunk) for chunk in Connection().pack_command(*args))
    assert packed().pack_command("CONFIG GET", "x") == Connection().pack_command("CONFIG GET", "x")
    with pytest.raises(DataError):
        packed().pack_command("SET", "k", None)



def test_a_write_on_a_transport_uvloop_closed_counts_as_a_lost_connection() -> None:
    """The server runs on uvloop, which refuses such a write where asyncio drops it."""

    async def write_after_close() -> BaseException | None:
        server = await asyncio.start_server(lambda reader, writer: writer.close(),
                                            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.close()
        await asyncio.sleep(0.05)  # the close completes: uvloop frees the socket's handle
        try:
            writer.writelines([b"PING\r\n"])
        except Exception as error:  # what uvloop raises is the point
            return error
        finally:
            server.close()
            await server.wait_closed()
        return None

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        error = runner.run(write_after_close())
    assert error is not None and closed_transport(error), repr(error)
    assert not closed_transport(RuntimeError("something else"))
