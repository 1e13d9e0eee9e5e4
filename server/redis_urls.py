"""Redis clients from ``REDIS_URL``: a plain server, the master behind Redis Sentinel, or a
Redis Cluster. The URL alone decides.

Accepted URLs:

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
  ``unix://[[user]:password@]/path/to/socket[?db=n]``: redis-py's own URL forms.
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]``
  ``[?sentinel_password=...&sentinel_username=...]``: ask these Sentinels (port 26379 when
  left out; IPv6 as ``[::1]:26379``) where the master of ``service_name`` is. ``user`` and
  ``password`` are the Redis master's; the Sentinels' own credentials, if they need any, go
  in the query. Percent-encode ``@ / : ? # ,`` and ``%`` inside names and passwords.
- ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` and ``rediss+cluster://``
  (TLS): a Redis Cluster (port 6379 when left out), found from any of these nodes through
  redis-py's asyncio ``RedisCluster``. A cluster has database 0 only.

Every client gets a *waiting* pool of ``pool_size`` connections: under load a caller queues
for up to ``timeout`` seconds instead of failing at once.

A request that meets a dead connection (Redis restarted or failed over since the connection
was pooled) reconnects and is sent once more (``retry=1`` on ``ConnectionError`` only): redis-py
does not notice at checkout that the server closed a pooled connection, so without it every
stale connection fails one request. A retried command may have run once already, before its
reply was lost: commits are deduplicated by their command id, the other writes are
idempotent. Timeouts are not retried (that would double the time a caller waits). Pub/sub
clients (``retry=False``) never retry: redis-py would quietly resubscribe, hiding the
messages lost meanwhile from the hub, which must sweep its rooms after any reconnect.
redis-py 8's maintenance notifications are off (they need RESP3); when on, the pool also
skips its stale-connection check at checkout. redis-py's asyncio Sentinel pool
does not wait (it raises beyond ``max_connections``), so :class:`BlockingSentinelConnectionPool`
combines it with :class:`~redis.asyncio.BlockingConnectionPool`. A Sentinel-managed
connection asks the Sentinels for the master's address every time it (re)connects, so after a
failover the pool's connections reach the new master by themselves. redis-py's cluster
client refuses a command beyond ``max_connections`` on one node instead of waiting, so
:class:`WaitingRedisCluster` lets at most ``pool_size`` commands (or pipelines) run at once
and queues the rest: no node ever needs more than ``pool_size`` connections.

A malformed URL raises :class:`ValueError` with a message that never quotes the URL (it may
carry a password).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, SlotNotCoveredError

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379
HEALTH_CHECK_INTERVAL = 30
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username")
_SCHEMES_HINT = "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"

RedisClient = aioredis.Redis | RedisCluster


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed master pool that waits for a free connection instead of raising.

    MRO: this class, SentinelConnectionPool, BlockingConnectionPool, ConnectionPool. The
    Sentinel pool defines neither ``get_connection`` nor ``release``, so the blocking pool's
    (wait up to ``timeout`` for one of ``max_connections``) are the ones used; the Sentinel
    pool supplies the Sentinel-managed connection class and master discovery. The pool owns
    its Sentinel clients and closes them with itself.
    """

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


class WaitingRedisCluster(RedisCluster):
    """A RedisCluster whose callers wait for one of ``pool_size`` places (see the module
    docstring), and that can open plain connections to one of its nodes (pub/sub)."""

    def __init__(self, target: ClusterTarget, *, pool_size: int, timeout: float,
                 retry: bool) -> None:
        self.target = target
        self.timeout = timeout
        self.pool_size = pool_size
        self._places = asyncio.Semaphore(pool_size)
        super().__init__(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username, password=target.password, ssl=target.tls,
            require_full_coverage=False,  # one shard failing over leaves the others usable
            max_connections=pool_size, socket_connect_timeout=timeout,
            health_check_interval=HEALTH_CHECK_INTERVAL,
            # On a connection error the cluster client finds the slots' owners again and
            # retries (a few times, with backoff: a failover takes a moment); pub/sub never.
            retry=None if retry else connection_retry(False),
        )

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._places, _slot_errors():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: bool | None = None,
                 shard_hint: Any | None = None) -> ClusterPipeline:
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]

    def owner(self, key: str) -> ClusterNode:
        """The primary that serves the key's slot (by the slot map as last read)."""
        try:
            node = self.get_node_from_key(key)
        except SlotNotCoveredError:
            node = None
        if node is None:
            raise LookupError("no node serves this slot")
        return node

    def node_client(self, host: str, port: int, *, pool_size: int = 1,
                    retry: bool = False) -> aioredis.Redis:
        """A plain client of one node, with this cluster's credentials and TLS."""
        return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool(
            connection_class=hiredis_packed(SSLConnection if self.target.tls else Connection),
            host=host, port=port, username=self.target.username,
            password=self.target.password, max_connections=pool_size, timeout=self.timeout,
            socket_connect_timeout=self.timeout, health_check_interval=HEALTH_CHECK_INTERVAL,
            retry=connection_retry(retry)))


class _WaitingPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, WaitingRedisCluster)
        async with client._places, _slot_errors():
            return await super().execute(raise_on_error, allow_redirections)


@contextlib.asynccontextmanager
async def _slot_errors() -> AsyncIterator[None]:
    # A slot with no owner for a moment (a failover) is a connection problem to the
    # caller, like a node that does not answer: it tries again later.
    try:
        yield
    except SlotNotCoveredError as error:
        raise RedisConnectionError("no node serves this slot now") from error


@dataclass(frozen=True)
class ClusterTarget:
    """A parsed ``redis+cluster://`` URL. The password is left out of the repr."""

    nodes: tuple[tuple[str, int], ...]
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL. Passwords are left out of the repr."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's asyncio packer (Python; its
    sync connections already use hiredis): the same bytes, and a commit's packing (the
    room's state and its event) took 5% of the server's CPU under load."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as error:
            raise DataError(str(error)) from None


_PACKED: dict[type, type] = {}


def hiredis_packed(connection_class: type) -> type:
    """`connection_class` with commands packed by hiredis."""
    found = _PACKED.get(connection_class)
    if found is None:
        found = _PACKED[connection_class] = type(
            connection_class.__name__, (_HiredisPacking, connection_class), {})
    return found


def closed_transport(error: BaseException) -> bool:
    """A write on a connection that was closed meanwhile: uvloop raises a RuntimeError where
    asyncio's own loop drops the write (seen when redis-py reconnects a dropped pub/sub
    connection). It is a lost connection like any other."""
    return isinstance(error, RuntimeError) and "handler is closed" in str(error)


def connection_retry(retry: bool = True) -> Retry:
    """Once more after a connection error (or never, for pub/sub): see the module docstring."""
    return Retry(NoBackoff(), 1 if retry else 0, supported_errors=(RedisConnectionError,))


def make_client(url: str, *, pool_size: int, timeout: float,
                retry: bool = True) -> RedisClient:
    """An asyncio Redis client for ``url`` with a waiting pool of ``pool_size`` connections.

    ``timeout`` bounds both connecting and waiting for a free connection. ``retry``: a
    request that meets a dead connection reconnects and is sent once more (False for
    pub/sub). Closing the client (``await client.aclose()``) closes its pool too.
    """
    if pool_size < 1:
        raise ValueError("the Redis pool size must be at least 1")
    scheme = _scheme(url)
    if scheme in PLAIN_SCHEMES:
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=pool_size, timeout=timeout,
                socket_connect_timeout=timeout, health_check_interval=HEALTH_CHECK_INTERVAL,
                retry=connection_retry(retry),
            )
        except ValueError:
            # redis-py's messages are safe, but the cause's traceback may show the URL.
            raise ValueError(
                f"REDIS_URL is not a valid {scheme}:// URL (check the port, the database "
                "number and the query parameters)") from None
        pool.connection_class = hiredis_packed(pool.connection_class)
        return aioredis.Redis.from_pool(pool)
    if scheme == SENTINEL_SCHEME:
        return _sentinel_client(parse_sentinel_url(url), pool_size=pool_size, timeout=timeout,
                                retry=retry)
    if scheme in CLUSTER_SCHEMES:
        return WaitingRedisCluster(parse_cluster_url(url), pool_size=pool_size,
                                   timeout=timeout, retry=retry)
    raise ValueError(f"REDIS_URL must start with {_SCHEMES_HINT}")


def _sentinel_client(target: SentinelTarget, *, pool_size: int, timeout: float,
                     retry: bool) -> aioredis.Redis:
    sentinel_kwargs: dict[str, object] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,  # a Sentinel that hangs must not hang every reconnect
    }
    if target.sentinel_username is not None:
        sentinel_kwargs["username"] = target.sentinel_username
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    master_kwargs: dict[str, object] = {"db": target.db}
    if target.username is not None:
        master_kwargs["username"] = target.username
    if target.password is not None:
        master_kwargs["password"] = target.password
    pool = BlockingSentinelConnectionPool(  # type: ignore[no-untyped-call]
        target.service_name, manager,
        is_master=True,
        max_connections=pool_size,
        timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=connection_retry(retry),
        **master_kwargs,
    )
    pool.connection_class = hiredis_packed(pool.connection_class)
    return aioredis.Redis.from_pool(pool)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL (see the module docstring); ValueError if malformed."""
    if _scheme(url) != SENTINEL_SCHEME:
        raise _bad("it must start with redis+sentinel://")
    parts, username, password, sentinels = _hosts_url(url, SENTINEL_SCHEME,
                                                      DEFAULT_SENTINEL_PORT)
    service_name, db = _service_and_db(parts.path)
    query = _query(parts.query)
    return SentinelTarget(
        sentinels=sentinels,
        service_name=service_name,
        db=db,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )


def parse_cluster_url(url: str) -> ClusterTarget:
    """Parse a ``redis+cluster://`` URL (see the module docstring); ValueError if malformed."""
    scheme = _scheme(url)
    if scheme not in CLUSTER_SCHEMES:
        raise _bad("it must start with redis+cluster:// or rediss+cluster://", scheme)
    parts, username, password, nodes = _hosts_url(url, scheme, DEFAULT_REDIS_PORT)
    if parts.path not in ("", "/"):
        raise _bad("a cluster has one database: nothing may follow the node list", scheme)
    if parts.query:
        raise _bad("it takes no query parameters", scheme)
    return ClusterTarget(nodes=nodes, tls=scheme == "rediss+cluster", username=username,
                         password=password)


# -- pieces -------------------------------------------------------------------------------


def _hosts_url(url: str, scheme: str, default_port: int) -> tuple[
        SplitResult, str | None, str | None, tuple[tuple[str, int], ...]]:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _bad("its host list cannot be read (check the brackets around IPv6 "
                   "addresses)", scheme) from None
    if "#" in url:
        raise _bad("it must not contain '#' (percent-encode it as %23 in a password)", scheme)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username, password = _userinfo(userinfo) if at else (None, None)
    hosts = tuple(_host_port(item, scheme, default_port) for item in hostlist.split(","))
    return parts, username, password, hosts


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"REDIS_URL must start with {_SCHEMES_HINT}")
    return url.split("://", 1)[0].strip().lower()


def _bad(why: str, scheme: str = SENTINEL_SCHEME) -> ValueError:
    return ValueError(f"REDIS_URL is not a valid {scheme}:// URL: {why}")


def _userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if colon and password else None)


def _host_port(item: str, scheme: str, default_port: int) -> tuple[str, int]:
    what = "Sentinel" if scheme == SENTINEL_SCHEME else "node"
    item = item.strip()
    if not item:
        raise _bad(f"it needs at least one {what} host:port, and no empty ones", scheme)
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or not host:
            raise _bad(f"an IPv6 {what} address needs its closing ']'", scheme)
        if rest and not rest.startswith(":"):
            raise _bad(f"an IPv6 {what} address is written [address]:port", scheme)
        port_text = rest[1:] if rest else ""
        has_port = bool(rest)
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            host, port_text = item, ""
        has_port = bool(colon)
        if ":" in host or "[" in host or "]" in host:
            raise _bad(f"write an IPv6 {what} address in brackets: [address]:port", scheme)
    host = unquote(host)
    if not host or any(c in host for c in " /@?#"):
        raise _bad(f"a {what} host name is empty or has characters a host cannot have",
                   scheme)
    if not has_port:
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(f"a {what} port must be a number from 1 to 65535", scheme)
    return host, int(port_text)


def _service_and_db(path: str) -> tuple[str, int]:
    segments = path.split("/")[1:] if path.startswith("/") else []
    if segments and segments[-1] == "" and len(segments) > 1:
        segments = segments[:-1]  # one trailing slash: "/pb/" or "/pb/0/"
    if not segments or not segments[0]:
        raise _bad("it needs the Sentinel service name as its path: .../service_name[/db]")
    if len(segments) > 2:
        raise _bad("its path is /service_name or /service_name/db, nothing more")
    service_name = unquote(segments[0])
    if not service_name.strip() or any(c.isspace() for c in service_name):
        raise _bad("the service name must not be empty or contain spaces")
    db = 0
    if len(segments) == 2:
        text = segments[1]
        if not text.isascii() or not text.isdigit():
            raise _bad("the database after the service name must be a number (0 or more)")
        db = int(text)
    return service_name, db


def _query(query: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _bad("its query is not name=value pairs joined by '&'") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in _SENTINEL_QUERY:
            raise _bad(f"the only query parameters it takes are {', '.join(_SENTINEL_QUERY)}")
        if name in found:
            raise _bad("a query parameter is given twice")
        found[name] = value
    return found
