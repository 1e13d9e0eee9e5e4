"""docs/operations.md lists every setting the server reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_the_server_reads_is_documented() -> None:
    source = (ROOT / "server" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.get\(|_int\(env, |_float\(env, )"([A-Z_]+)"', source))
    assert {"REDIS_URL", "PORT", "PARTSBOARD_DURABLE_ACKS", "PARTSBOARD_STAGES_FILE"} <= read
    table = (ROOT / "docs" / "operations.md").read_text().split("## Configuration", 1)[1]
    documented = set(re.findall(r"`([A-Z_]+)`", table.split("\n## ", 1)[0]))
    assert read - documented == set(), "undocumented in docs/operations.md"
