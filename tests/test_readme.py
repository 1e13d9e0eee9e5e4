"""The README's two commands, tried as a newcomer would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from server.local_redis import free_port

ROOT = Path(__file__).resolve().parents[1]


def commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = {}
    for heading in ("Run it", "Test it"):
        section = text.split(f"## {heading}", 1)[1]
        found[heading] = re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()
    return found


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = commands()["Test it"]
    assert "\n" not in test_command
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
            ] == [test_command]


def test_the_run_command_serves_the_start_page_and_a_room(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "PARTSBOARD_THERAPIST_KEY")}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["bash", "-c", commands()["Run it"]], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        start = httpx.get(f"{base}/")
        assert start.status_code == 200 and "<title>Partsboard" in start.text
        created = httpx.post(f"{base}/api/rooms", json={
            "partners": {"a": {"name": "Noor"}, "b": {"name": "Jules"}}})
        assert created.status_code == 201  # development mode: no practice key set
        room = created.json()["room"]
        assert httpx.get(f"{base}/r/{room}").status_code == 200
        output = log_path.read_text()
        assert "throwaway local Redis" in output and "DEVELOPMENT MODE" in output
        redis_port = int(re.search(r"on port (\d+)", output).group(1))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    # The throwaway Redis stopped with the server.
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{redis_port}", timeout=0.5)
        except httpx.TransportError as error:
            if "refused" in str(error).lower() or isinstance(error, httpx.ConnectError):
                break
        assert time.monotonic() < deadline, "the throwaway Redis outlived the server"
        time.sleep(0.2)
