"""Queueing formulas against published values and independent computations."""

from __future__ import annotations

import math

import pytest

from simulators import theory

HANDLE = 180.0
MU = 1 / HANDLE
LAM_10 = 10 * MU  # 10 Erlangs offered


def test_erlang_c_published_example() -> None:
    # 10 Erlangs, 14 agents, 180 s handle time: the textbook example
    # (e.g. the Erlang C worked example of callcentrehelper.com)
    c = theory.erlang_c(14, LAM_10, MU)
    assert c.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert c.mean_wait_s == pytest.approx(7.84, abs=0.005)
    assert theory.erlang_c_service_level(14, LAM_10, MU, 20.0) == pytest.approx(0.8884, abs=5e-5)
    assert c.occupancy == pytest.approx(10 / 14)


def test_erlang_b_known_values() -> None:
    assert theory.erlang_b(1, 1.0) == pytest.approx(0.5)
    assert theory.erlang_b(2, 1.0) == pytest.approx(0.2)
    assert theory.erlang_b(10, 5.0) == pytest.approx(0.018385, abs=1e-6)


def test_erlang_c_single_server_is_mm1() -> None:
    lam, mu = 0.8, 1.0
    c = theory.erlang_c(1, lam, mu)
    assert c.p_wait == pytest.approx(0.8)
    assert c.mean_wait_s == pytest.approx(lam / (mu * (mu - lam)))


def test_erlang_c_unstable_raises() -> None:
    with pytest.raises(ValueError, match="unstable"):
        theory.erlang_c(10, 10 * MU, MU)


@pytest.mark.parametrize(("c", "load", "patience"), [
    (14, 10.0, 120.0), (14, 14.0, 120.0), (14, 20.0, 60.0), (50, 48.0, 300.0), (3, 2.0, 30.0),
    (1, 0.5, 600.0),
])
def test_erlang_a_closed_form_matches_birth_death_chain(c: int, load: float,
                                                        patience: float) -> None:
    lam, theta = load * MU, 1 / patience
    a = theory.erlang_a(c, lam, MU, theta)
    b = theory.erlang_a_chain(c, lam, MU, theta)
    assert a.p_wait == pytest.approx(b.p_wait, rel=1e-9)
    assert a.p_abandon == pytest.approx(b.p_abandon, rel=1e-9)
    assert a.mean_wait_s == pytest.approx(b.mean_wait_s, rel=1e-9)
    assert a.occupancy == pytest.approx(b.occupancy, rel=1e-9)


def test_erlang_a_with_patience_equal_to_handle_time_is_poisson() -> None:
    # theta == mu: every chat in the system leaves at rate mu, so the number
    # in the system is Poisson(lam / mu) (M/M/infinity), whatever c is
    c, load = 14, 12.0
    lam = load * MU
    a = theory.erlang_a(c, lam, MU, MU)
    pk = [math.exp(-load)]
    for k in range(1, 200):
        pk.append(pk[-1] * load / k)
    assert a.p_wait == pytest.approx(sum(pk[c:]), rel=1e-9)
    queue = sum((k - c) * p for k, p in enumerate(pk) if k > c)
    assert a.p_abandon == pytest.approx(MU * queue / lam, rel=1e-9)


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    a = theory.erlang_a(14, LAM_10, MU, 1e-9)
    c = theory.erlang_c(14, LAM_10, MU)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-4)
    assert a.mean_wait_s == pytest.approx(c.mean_wait_s, rel=1e-3)
    assert a.p_abandon < 1e-8


def test_erlang_a_is_stable_when_overloaded() -> None:
    a = theory.erlang_a(14, 20 * MU, MU, 1 / 60)
    assert 0 < a.p_abandon < 1
    assert a.p_wait > 0.5
    assert a.occupancy < 1
    # what is not served is abandoned: carried load = offered x (1 - P(Ab))
    assert a.occupancy * 14 == pytest.approx(20 * (1 - a.p_abandon))
