"""Operator configuration: validated at start-up, and it reaches the rooms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client import Client
from client.http import create_room
from server.settings import Settings, SettingsError

STAGES = [{"name": f"Step {n}", "guidance": f"What to do in step {n}."} for n in range(1, 6)]


def test_defaults_and_overrides() -> None:
    default = Settings.from_env({})
    assert default.dev_mode and default.idle_ttl == 3 * 3600 and default.max_lifetime == 12 * 3600
    assert default.limits.parts_per_partner == 15 and default.limits.text_length == 2000
    tuned = Settings.from_env({"PARTSBOARD_THERAPIST_KEY": "k", "PARTSBOARD_IDLE_TTL": "60",
                               "PARTSBOARD_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
                               "PARTSBOARD_MAX_PARTS": "5"})
    assert not tuned.dev_mode and tuned.idle_ttl == 60 and tuned.limits.parts_per_partner == 5
    assert tuned.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize("env", [{"PORT": "eighty"}, {"PARTSBOARD_IDLE_TTL": "-1"},
                                 {"PARTSBOARD_MAX_PARTS": "0"},
                                 {"PARTSBOARD_STAGES_FILE": "/nonexistent/stages.json"}])
def test_bad_configuration_is_refused_at_start_up(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_a_stages_file_needs_five_stages(tmp_path: Path) -> None:
    path = tmp_path / "stages.json"
    path.write_text(json.dumps(STAGES[:4]))
    with pytest.raises(SettingsError):
        Settings.from_env({"PARTSBOARD_STAGES_FILE": str(path)})
    path.write_text(json.dumps(STAGES))
    assert Settings.from_env({"PARTSBOARD_STAGES_FILE": str(path)}).stages[2].name == "Step 3"


async def test_renamed_stages_reach_every_viewer(server_factory, tmp_path: Path) -> None:
    path = tmp_path / "stages.json"
    path.write_text(json.dumps(STAGES))
    server = await server_factory.start({"PARTSBOARD_STAGES_FILE": str(path)})
    created = await create_room(server.base_url, key="test-key")
    async with Client(created.b) as b:
        assert b.view is not None
        stages = b.view["colls"]["room"]["settings"]["stages"]
        assert stages == STAGES


def test_a_bad_configuration_stops_the_server_with_a_clear_message(server_factory) -> None:
    with pytest.raises(RuntimeError) as failed:  # the harness's ServerStartError
        server_factory({"PARTSBOARD_IDLE_TTL": "soon"})
    assert "PARTSBOARD_IDLE_TTL must be a number" in str(failed.value)
