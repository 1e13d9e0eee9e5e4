"""--pin keeps the server's CPU for it: other tasks are moved off it, then put back."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import procs


def test_other_processes_leave_the_cpu_while_shielded_and_come_back_after() -> None:
    everywhere = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.sched_setaffinity(child.pid, everywhere)
        cpu = min(everywhere)
        with procs.shielded(cpu) as moved:
            inside = os.sched_getaffinity(child.pid)
            mine = os.sched_getaffinity(0)
        if len(everywhere) > 1:
            assert inside == mine == everywhere - {cpu}
            assert moved >= 2
        else:  # nowhere to go
            assert inside == everywhere
        assert os.sched_getaffinity(child.pid) == everywhere
        assert os.sched_getaffinity(0) == everywhere
    finally:
        child.kill()
        child.wait()
