"""``round3`` gives exactly the float ``round(x, 3)`` gives, and ``match_sum``
exactly the float ``sum`` gives (the outputs' bytes depend on both)."""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from engine.scoring import MatchParts, match_sum, round3


def same(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float(x: float) -> None:
    assert same(round3(x), round(x, 3))


@given(st.integers(-10**12, 10**12), st.sampled_from([0.0, 1e-9, -1e-9, 1e-7, -1e-7, 0.25]))
def test_near_halves_and_whole_thousandths(n: int, nudge: float) -> None:
    """Halves of a thousandth, whole thousandths, and floats a hair beside them."""
    for x in (n / 1000.0, (n + 0.5) / 1000.0, n / 1000.0 + nudge, (n + 0.5) / 1000.0 + nudge,
              math.nextafter((n + 0.5) / 1000.0, math.inf),
              math.nextafter((n + 0.5) / 1000.0, -math.inf)):
        assert same(round3(x), round(x, 3)), x


def test_signed_zeros_and_small_negatives() -> None:
    for x in (0.0, -0.0, -1e-20, -0.0004, -0.0005, -0.0006, 1e-300, -1e-300, 5e-324):
        assert same(round3(x), round(x, 3)), x


def test_scores_as_the_engine_makes_them() -> None:
    """Sums and products of the default weights' kind of numbers."""
    for i in range(200_000):
        x = i * 0.001 + i * 1e-7 - 37.5 + (i % 7) * 0.1
        assert same(round3(x), round(x, 3)), x


@given(st.tuples(*[st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0])] * 6))
def test_match_sum_is_the_builtin_sum(parts: MatchParts) -> None:
    assert same(match_sum(parts), sum(parts))


def test_match_sum_of_negative_zeros() -> None:
    assert same(match_sum((-0.0,) * 6), sum((-0.0,) * 6))  # 0.0 both: the sum starts at 0
