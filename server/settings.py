"""Configuration from the environment (12-factor), validated once at start-up."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from rooms.model import Limits, StageInfo
from rooms.stages import DEFAULT_STAGES, LAST_STAGE


class SettingsError(ValueError):
    pass


def _int(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


def _stages(env: dict[str, str]) -> tuple[StageInfo, ...]:
    path = env.get("PARTSBOARD_STAGES_FILE")
    if not path:
        return DEFAULT_STAGES
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        stages = tuple(StageInfo(str(s["name"]), str(s["guidance"])) for s in data)
    except (OSError, ValueError, KeyError, TypeError) as error:
        kind = type(error).__name__
        raise SettingsError(f"PARTSBOARD_STAGES_FILE is not valid: {kind}") from None
    if len(stages) != LAST_STAGE:
        raise SettingsError("PARTSBOARD_STAGES_FILE must list exactly five stages")
    return stages


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    therapist_key: str | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    idle_ttl: float = 3 * 3600
    max_lifetime: float = 12 * 3600
    redis_pool_size: int = 64
    listen_backlog: int = 8192
    redis_timeout: float = 5.0
    commit_wait: float = 1.0
    log_length: int = 1000
    max_frame_bytes: int = 64 * 1024
    command_rate: float = 20.0
    command_burst: int = 40
    drag_rate: float = 30.0
    drag_burst: int = 30
    connections_per_role: int = 8
    send_queue: int = 512
    hello_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    presence_ttl: float = 15.0
    sweep_interval: float = 2.0
    # Replicas that must confirm a commit before it is acknowledged (0: no wait), and for
    # how long to wait (a commit they did not confirm in time is answered busy; the client
    # sends it again under the same id, and it is applied once).
    durable_acks: int = 0
    durable_timeout: float = 1.0
    bad_frames_allowed: int = 10
    strike_rate: float = 0.2
    limits: Limits = field(default_factory=Limits)
    stages: tuple[StageInfo, ...] = DEFAULT_STAGES

    @property
    def dev_mode(self) -> bool:
        return not self.therapist_key

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        origins = tuple(o.strip().rstrip("/") for o in env.get("PARTSBOARD_ALLOWED_ORIGINS", "")
                        .split(",") if o.strip())
        limits = Limits(
            parts_per_partner=_int(env, "PARTSBOARD_MAX_PARTS", Limits().parts_per_partner),
            name_length=_int(env, "PARTSBOARD_MAX_NAME", 80),
            text_length=_int(env, "PARTSBOARD_MAX_TEXT", 2000),
            agreements=_int(env, "PARTSBOARD_MAX_AGREEMENTS", 30),
        )
        return cls(
            host=env.get("HOST", "127.0.0.1"),
            port=_int(env, "PORT", 8000, minimum=0),
            redis_url=env.get("REDIS_URL") or None,
            therapist_key=env.get("PARTSBOARD_THERAPIST_KEY") or None,
            public_url=(env.get("PARTSBOARD_PUBLIC_URL") or "").rstrip("/") or None,
            allowed_origins=origins,
            idle_ttl=_float(env, "PARTSBOARD_IDLE_TTL", 3 * 3600),
            max_lifetime=_float(env, "PARTSBOARD_MAX_LIFETIME", 12 * 3600),
            redis_pool_size=_int(env, "PARTSBOARD_REDIS_POOL", 64),
            commit_wait=_float(env, "PARTSBOARD_COMMIT_WAIT", 1.0),
            listen_backlog=_int(env, "PARTSBOARD_LISTEN_BACKLOG", 8192),
            log_length=_int(env, "PARTSBOARD_LOG_LENGTH", 1000, minimum=10),
            max_frame_bytes=_int(env, "PARTSBOARD_MAX_FRAME", 64 * 1024, minimum=1024),
            command_rate=_float(env, "PARTSBOARD_COMMAND_RATE", 20.0),
            command_burst=_int(env, "PARTSBOARD_COMMAND_BURST", 40),
            drag_rate=_float(env, "PARTSBOARD_DRAG_RATE", 30.0),
            connections_per_role=_int(env, "PARTSBOARD_MAX_CONNECTIONS_PER_ROLE", 8),
            send_queue=_int(env, "PARTSBOARD_SEND_QUEUE", 512),
            hello_timeout=_float(env, "PARTSBOARD_HELLO_TIMEOUT", 10.0),
            ping_interval=_float(env, "PARTSBOARD_PING_INTERVAL", 20.0),
            ping_timeout=_float(env, "PARTSBOARD_PING_TIMEOUT", 20.0),
            presence_ttl=_float(env, "PARTSBOARD_PRESENCE_TTL", 15.0),
            sweep_interval=_float(env, "PARTSBOARD_SWEEP_INTERVAL", 2.0),
            durable_acks=_int(env, "PARTSBOARD_DURABLE_ACKS", 0, minimum=0),
            durable_timeout=_float(env, "PARTSBOARD_DURABLE_TIMEOUT", 1.0),
            limits=limits,
            stages=_stages(env),
        )
