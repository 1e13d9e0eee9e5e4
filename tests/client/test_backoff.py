from __future__ import annotations

from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.backoff import CAP, INITIAL, backoff


def test_ceilings_double_from_initial_up_to_the_cap() -> None:
    delays = list(islice(backoff(rand=lambda: 1.0), 9))
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0]
    assert (INITIAL, CAP) == (0.05, 3.0)


def test_full_jitter_scales_the_ceiling() -> None:
    draws = iter([0.5, 0.0, 0.25, 0.999])
    assert list(islice(backoff(rand=lambda: next(draws)), 4)) == [0.025, 0.0, 0.05, 0.3996]


def test_custom_parameters() -> None:
    assert list(islice(backoff(1.0, 3.0, 10.0, rand=lambda: 1.0), 4)) == [1.0, 3.0, 9.0, 10.0]


def test_default_random_is_used() -> None:
    delays = list(islice(backoff(), 50))
    assert all(0.0 <= d <= CAP for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(("initial", "factor", "cap"), [(0, 2, 3), (1, 0.5, 3), (2, 2, 1)])
def test_bad_parameters(initial: float, factor: float, cap: float) -> None:
    with pytest.raises(ValueError):
        next(backoff(initial, factor, cap))


@given(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=40))
def test_every_delay_is_within_its_ceiling(draws: list[float]) -> None:
    source = iter(draws)
    delays = list(islice(backoff(rand=lambda: next(source)), len(draws)))
    for n, (draw, delay) in enumerate(zip(draws, delays, strict=True)):
        ceiling = min(CAP, INITIAL * 2**n)
        assert 0.0 <= delay <= ceiling
        assert delay == pytest.approx(draw * ceiling)
