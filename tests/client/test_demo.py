"""`python -m client demo` plays the demo couple through a whole session on a live server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def demo_command(server: Any, key: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "client", "demo", "--base", server.base_url, "--key", key,
            "--pace", "0", *extra]


def demo_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PARTSBOARD_THERAPIST_KEY", None)
    return env


def run_demo(server: Any, key: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # No terminal on stdin: the demo ends its session as soon as it is done.
    return subprocess.run(demo_command(server, key, *extra), cwd=cwd, env=demo_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90,
                          check=False)


def test_demo_plays_all_five_stages(server: Any, key: str, tmp_path: Path) -> None:
    done = run_demo(server, key, tmp_path, "--export")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for stage in range(1, 6):
        assert f"[stage {stage}]" in out
    for step in ("acknowledge every agreement", "The Alarm reacts to The Quiet One",
                 "The Quiet One reacts to The Alarm", "Sam asks for a pause",
                 "clears the pause", "share their check-ins", "Sam answers: yes",
                 "as scribe, writes The Peacekeeper", "as scribe, draws for Sam",
                 "Sam keeps The Peacekeeper",
                 "all three boards agree", "ended the session", "Demo complete."):
        assert step in out
    assert out.count("/r/") == 3  # the three join links
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    assert files[0].suffix == ".json"
    assert not any(name in files[0].name for name in ("Alex", "Sam", "Alarm", "Planner"))
    document = json.loads(files[0].read_bytes())
    assert "The one who gets left" in json.dumps(document)


def test_demo_writes_nothing_without_export(server: Any, key: str, tmp_path: Path) -> None:
    done = run_demo(server, key, tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_with_a_wrong_key_fails_plainly(server: Any, tmp_path: Path) -> None:
    done = run_demo(server, "not-the-key", tmp_path)
    assert done.returncode == 1
    assert "unauthorized" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_finished_demo_keeps_its_room_open_until_enter(server: Any, key: str,
                                                           tmp_path: Path) -> None:
    """With --end-after the watcher's page does not land on "this session is not here":
    the room is there once the demo is done, until Enter (or the time) ends it."""
    demo = subprocess.Popen(demo_command(server, key, "--end-after", "600"), cwd=tmp_path,
                            env=demo_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None and demo.stdin is not None
        shown: list[str] = []
        for line in demo.stdout:
            shown.append(line)
            if "stays open" in line:
                break
        assert "all three boards agree" in "".join(shown), "".join(shown)
        room = re.search(r"/r/([A-Za-z0-9_-]+)#", "".join(shown))
        assert room is not None
        page = f"{server.base_url}/r/{room.group(1)}"
        assert httpx.get(page).status_code == 200
        demo.stdin.write("\n")
        demo.stdin.flush()
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, err
    assert "ended the session" in out and "Demo complete." in out
    assert httpx.get(page).status_code == 404
