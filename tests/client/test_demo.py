"""`python -m client demo` plays the demo couple through a whole session on a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_demo(server: Any, key: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PARTSBOARD_THERAPIST_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "client", "demo", "--base", server.base_url, "--key", key,
         "--pace", "0", *extra],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90, check=False,
    )


def test_demo_plays_all_five_stages(server: Any, key: str, tmp_path: Path) -> None:
    done = run_demo(server, key, tmp_path, "--export")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for stage in range(1, 6):
        assert f"[stage {stage}]" in out
    for step in ("acknowledge every agreement", "The Alarm reacts to The Quiet One",
                 "The Quiet One reacts to The Alarm", "Sam asks for a pause",
                 "clears the pause", "share their check-ins", "Sam answers: yes",
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
