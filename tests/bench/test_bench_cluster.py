"""The benchmark's cluster mode at tiny scale: two server processes on one Redis and on a
3-shard cluster (each room's members spread over both processes). Only correctness is
asserted (every message arrived once, no seq gaps, every client resumed after one of the
processes was killed); no timings."""

from __future__ import annotations

import pytest

from bench import report, scenarios

# No idle step (nothing here reads it); a short steady step at a rate that still sends
# about a dozen commands.
TINY = scenarios.Plan(
    sweep=(2,), cmd_rate=4.0, drag_rate=10.0, step_seconds=1.5, drain=5.0,
    sat_cmd=(), sat_drag=(), idle_seconds=0.0,
    storm=True, storm_kill_after=1.0, storm_seconds=3.0, storm_drain=30.0, workers=1,
    shape_rooms=0,
)


@pytest.fixture(scope="module")
def results() -> scenarios.Results:
    return scenarios.run_all(TINY, log=lambda line: None, systems=("partsboard-2", "cluster"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["partsboard-2", "cluster"])
def test_two_processes_deliver_everything_once(results: scenarios.Results, kind: str) -> None:
    [d] = results.systems[kind]["steady"]
    assert d["handler_error"] is None
    assert d["sent"].get("cmd", 0) > 0 and d["sent"].get("drag", 0) > 0
    assert d["lat"]["cmd"]["n"] == 3 * d["sent"]["cmd"]
    assert d["lat"]["drag"]["n"] == 2 * d["sent"]["drag"]
    assert scenarios.loss(d) == 0 and d["errors"] == {}
    assert d["connections"] == 6 and d["dead"] == 0
    assert results.systems[kind]["memory"]["redis_kib_per_room"] > 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["partsboard-2", "cluster"])
def test_killing_one_of_two_processes_loses_nothing(results: scenarios.Results,
                                                    kind: str) -> None:
    storm = results.systems[kind]["storm"]
    assert storm["resumed"] >= 1
    assert storm["seq_gaps"] == 0 and storm["seq_dups"] == 0 and storm["unacked"] == 0
    assert not storm["lost"].get("cmd")


def test_the_report_sets_the_cluster_beside_one_redis(results: scenarios.Results) -> None:
    text = report.render(results)
    assert "cluster ÷ one Redis, 2" in text
    assert "Steady, 2 rooms" in text and "Redis KiB per room" in text
