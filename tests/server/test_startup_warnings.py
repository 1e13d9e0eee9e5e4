"""At start-up the server warns when Redis would write session content to disk, and only
then."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.local_redis import LocalRedis

WARNING = "Redis persists data to disk"


@pytest.mark.parametrize("persistence", [("--save", "3600 1"), ("--appendonly", "yes")],
                         ids=["save", "appendonly"])
async def test_a_redis_that_persists_to_disk_is_warned_about(
        server_factory, tmp_path: Path, persistence: tuple[str, str]) -> None:
    # This Redis holds no session (the server only starts), and what it writes on
    # shutdown goes to the test's own temporary directory.
    with LocalRedis(extra_args=(*persistence, "--dir", str(tmp_path))) as persistent:
        server = await server_factory.start({"REDIS_URL": persistent.url})
        log = server.log_text()
        server.terminate()
    assert log.count(WARNING) == 1, log
    assert "turn persistence off" in log


async def test_a_redis_without_persistence_gets_no_warning(server_factory) -> None:
    server = await server_factory.start()  # the test Redis: save "" and appendonly no
    assert WARNING not in server.log_text()
    assert "persistence settings" not in server.log_text()


async def test_more_parts_than_a_side_has_places_is_warned_about(server_factory) -> None:
    crowded = await server_factory.start({"PARTSBOARD_MAX_PARTS": "16"})
    assert "cards will lie on each other" in crowded.log_text()
    crowded.terminate()
    fitting = await server_factory.start({"PARTSBOARD_MAX_PARTS": "15"})
    assert "cards will lie on each other" not in fitting.log_text()
