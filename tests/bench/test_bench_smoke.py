"""The benchmark machinery at tiny scale, against the relay and the real server.

Only correctness is asserted (every message arrived once, no seq gaps, every client
resumed after a kill -9); no timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report, scenarios

# Short steps at raised rates (as many messages as longer ones at lower rates): the whole
# run is on the suite's clock.
TINY = scenarios.Plan(
    sweep=(2,), cmd_rate=3.0, drag_rate=20.0, step_seconds=2.0, drain=5.0,
    sat_cmd=(30,), sat_drag=(60,), sat_seconds=1.0, idle_seconds=0.5,
    storm=True, storm_kill_after=0.75, storm_seconds=2.5, storm_drain=30.0, workers=1,
    shape_rooms=2, shape_first=6, shape_cmd=(6,), shape_drag=(12,), shape_seconds=1.0,
    overload_seconds=1.0, overload_drain=20.0,
)


@pytest.fixture(scope="module")
def results() -> scenarios.Results:
    return scenarios.run_all(TINY, log=lambda line: None)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", scenarios.SYSTEMS)
def test_steady_load_arrives_once_everywhere(results: scenarios.Results, kind: str) -> None:
    steady = results.systems[kind]["steady"]
    assert [d["rooms"] for d in steady] == [2]
    d = steady[0]
    assert d["handler_error"] is None
    assert d["sent"].get("cmd", 0) > 0 and d["sent"].get("drag", 0) > 0
    # every command reaches all three members, every drag the two others
    assert d["lat"]["cmd"]["n"] == 3 * d["sent"]["cmd"]
    assert d["lat"]["ack"]["n"] == d["sent"]["cmd"]
    assert d["lat"]["drag"]["n"] == 2 * d["sent"]["drag"]
    assert scenarios.loss(d) == 0
    assert d["errors"] == {}
    assert d["connections"] == 6 and d["dead"] == 0
    assert d["cpu"]["server"] >= 0 and d["peak_rss_mib"] > 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", scenarios.SYSTEMS)
def test_saturation_steps_run_without_loss(results: scenarios.Results, kind: str) -> None:
    for what in ("cmd", "drag"):
        steps = results.systems[kind]["saturation"][what]["steps"]
        assert len(steps) == 1
        assert scenarios.loss(steps[0], (what,)) == 0
        assert steps[0]["lat"][what]["n"] > 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", scenarios.SYSTEMS)
def test_fixed_rate_shape_arrives_once_everywhere(results: scenarios.Results, kind: str) -> None:
    shape = results.systems[kind]["shape"]
    assert sorted(shape) == ["cmd", "drag", "first", "overload"]
    for label, steps in shape.items():
        [d] = steps
        what = "drag" if label == "drag" else "cmd"
        sent = d["sent"].get(what, 0)
        assert sent > 0 and d["handler_error"] is None
        # a command reaches all three members, a drag the two others
        assert d["lat"][what]["n"] == (2 if what == "drag" else 3) * sent
        assert scenarios.loss(d, (what,)) == 0 and d["errors"] == {}
        assert d["caught_up_s"] is not None and d["delivered_s"] is not None
        assert d["delivered_s"] <= d["caught_up_s"]
        assert d["loop_lag"]["n"] > 0, "the server's event-loop lag histogram was not read"
        assert d["loop_lag_off_cpu"]["n"] == d["loop_lag"]["n"], "no off-CPU part per lag"
        assert d["gc"]["window_s"] > 0 and d["gc"]["n"] >= d["gc"]["full"] >= 0
        if kind == "partsboard":  # its own share, read from /metrics before the drain
            inside = d["drag_relay"] if what == "drag" else d["commit"]
            assert 0 < inside["n"] <= (2 * sent if what == "drag" else sent), (label, inside)
    if kind == "partsboard":
        assert shape["overload"][0]["presence_wrong"] == 0


@pytest.mark.timeout(300)
def test_partsboard_clients_resume_after_kill_without_gaps(results: scenarios.Results) -> None:
    storm = results.systems["partsboard"]["storm"]
    assert storm["resumed"] == storm["connections_total"] == 6
    assert storm["checks"].get("drops") == 6
    assert storm["seq_gaps"] == 0 and storm["seq_dups"] == 0
    assert storm["unexpected_seqs"] == 0 and storm["x_dups"] == 0
    assert storm["unacked"] == 0 and storm["lost"].get("cmd", 0) == 0
    assert storm["dead"] == 0


@pytest.mark.timeout(300)
def test_relay_clients_reconnect_after_kill(results: scenarios.Results) -> None:
    storm = results.systems["relay"]["storm"]
    assert storm["resumed"] == 6 and storm["dead"] == 0


@pytest.mark.timeout(300)
def test_report_puts_both_systems_side_by_side(results: scenarios.Results,
                                               tmp_path: Path) -> None:
    text = report.render(results)
    assert "| metric | relay | Partsboard | ratio |" in text
    assert "2 rooms (6 connections)" in text
    assert "### Recovery storm" in text
    assert "### Fixed-rate shape (issue 13)" in text and "### Targets (issue 13)" in text
    assert "**Partsboard's garbage collections**" in text
    # beside Partsboard's time inside the server: the generators' own CPU and lateness
    drag = results.systems["partsboard"]["shape"]["drag"][0]
    assert any(line.startswith(f"| {drag['offered']:.0f} | ") and line.endswith(
        f"| {report._num(drag['cpu']['generator'], 2)} | {report._num(drag['lag_p99'], 1)} |")
        for line in text.splitlines())
    out = tmp_path / "performance.md"
    out.write_text(f"# Title\n\nintro\n\n{report.BEGIN}\nold\n{report.END}\n\n## Profile\nkept\n")
    report.write(results, out)
    written = out.read_text()
    assert written.startswith("# Title\n\nintro\n\n")
    assert "old" not in written and "## Profile\nkept" in written
    assert "2 rooms (6 connections)" in written
