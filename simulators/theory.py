"""Queueing theory the simulator is checked against.

- **Erlang C** (M/M/c): Poisson arrivals at rate ``lam``, ``c`` agents each
  serving one chat at a time with exponential handle times of mean
  ``1/mu``, infinite patience. Probability of waiting, mean wait and
  service level (share answered within ``t`` seconds).
- **Erlang A** (M/M/c+M, Garnett, Mandelbaum & Reiman, "Designing a call
  center with impatient customers", MSOM 4(3), 2002): the same plus
  exponential patience of mean ``1/theta``; a waiting visitor who runs out of
  patience leaves. Probability of waiting, probability of abandoning and
  mean wait (over all arrivals, served or not), from the closed form with
  the incomplete-gamma function A(x, y); ``erlang_a_chain`` computes the same
  from the birth–death chain as a cross-check. Its service level (share of
  arrivals answered within ``t``) integrates the offered-wait distribution of
  M/M/c+M (Mandelbaum & Zeltyn, "The M/M/n+G queue: summary of performance
  measures", 2009): an arrival whose offered wait is ``s`` is answered if its
  patience outlasts ``s``.

Rates are per second; times in seconds. Pure Python, no SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ErlangC:
    p_wait: float  # probability an arrival waits
    mean_wait_s: float  # mean wait over all arrivals
    occupancy: float  # lam / (c mu)


@dataclass(frozen=True)
class ErlangA:
    p_wait: float  # probability an arrival waits
    p_abandon: float  # probability an arrival abandons
    mean_wait_s: float  # mean time in queue over all arrivals (served or abandoning)
    occupancy: float  # share of agent time busy = lam (1 - p_abandon) / (c mu)


def erlang_b(c: int, load: float) -> float:
    """Blocking probability of M/M/c/c with offered ``load`` Erlangs (stable recursion)."""
    if c < 0 or load < 0:
        raise ValueError("erlang_b: need c >= 0 and load >= 0")
    b = 1.0
    for k in range(1, c + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c_p_wait(c: int, load: float) -> float:
    """Probability of waiting in M/M/c with ``load`` = lam/mu Erlangs (needs load < c)."""
    if load >= c:
        return 1.0
    b = erlang_b(c, load)
    return c * b / (c - load * (1.0 - b))


def erlang_c(c: int, lam: float, mu: float) -> ErlangC:
    load = lam / mu
    if load >= c:
        raise ValueError(f"erlang_c: unstable, load {load:.3f} >= c = {c}")
    p = erlang_c_p_wait(c, load)
    return ErlangC(p_wait=p, mean_wait_s=p / (c * mu - lam), occupancy=load / c)


def erlang_c_service_level(c: int, lam: float, mu: float, within_s: float) -> float:
    """Share of arrivals answered within ``within_s`` seconds (waiting 0 counts)."""
    p = erlang_c(c, lam, mu).p_wait
    return 1.0 - p * math.exp(-(c * mu - lam) * within_s)


def _gmr_a(x: float, y: float) -> float:
    """A(x, y) = x e^y y^-x γ(x, y) = Σ_{k≥0} y^k / ((x+1)…(x+k)) (GMR 2002, eq. 3.1)."""
    total = term = 1.0
    k = 0
    while True:
        k += 1
        term *= y / (x + k)
        total += term
        if term < 1e-16 * total and k > y - x:
            return total
        if k > 1_000_000:  # pragma: no cover - only for absurd inputs
            raise ValueError("erlang_a: series did not converge")


def erlang_a(c: int, lam: float, mu: float, theta: float) -> ErlangA:
    """Erlang A by the Garnett–Mandelbaum–Reiman closed form."""
    if theta <= 0:
        raise ValueError("erlang_a: theta (1 / mean patience) must be > 0; use erlang_c")
    rho = lam / (c * mu)
    a = _gmr_a(c * mu / theta, lam / theta)
    e1 = erlang_b(c, lam / mu)
    p_wait = a * e1 / (1.0 + (a - 1.0) * e1)
    p_ab_given_wait = 1.0 / (rho * a) + 1.0 - 1.0 / rho
    p_ab = p_ab_given_wait * p_wait
    return ErlangA(
        p_wait=p_wait,
        p_abandon=p_ab,
        mean_wait_s=p_ab / theta,  # abandonment flux = theta * E[queue] = lam * P(Ab)
        occupancy=lam * (1.0 - p_ab) / (c * mu),
    )


def _offered_wait_tail(c: int, lam: float, mu: float, theta: float, t: float) -> float:
    """P(V > t | V > 0) in M/M/c+M: gamma(x, y e^-theta t) / gamma(x, y) with
    x = c mu / theta, y = lam / theta (lower incomplete gamma), through A(x, y)."""
    x, y = c * mu / theta, lam / theta
    y_t = y * math.exp(-theta * t)
    return _gmr_a(x, y_t) / _gmr_a(x, y) * math.exp(-x * theta * t + y - y_t)


def erlang_a_service_level(c: int, lam: float, mu: float, theta: float, within_s: float,
                           steps: int = 64) -> float:
    """Share of all arrivals answered within ``within_s`` in M/M/c+M (abandoned
    arrivals count as not answered): P(V = 0) + the integral over (0, t] of
    e^(-theta s) dF_V(s), by parts and Simpson's rule on ``steps`` panels."""
    p_wait = erlang_a(c, lam, mu, theta).p_wait
    if within_s <= 0:
        return 1.0 - p_wait
    h = within_s / steps
    total = 0.0
    for i in range(steps + 1):
        weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
        total += weight * math.exp(-theta * i * h) * _offered_wait_tail(c, lam, mu, theta, i * h)
    integral = total * h / 3
    tail_t = _offered_wait_tail(c, lam, mu, theta, within_s)
    return 1.0 - p_wait * (math.exp(-theta * within_s) * tail_t + theta * integral)


def erlang_a_chain(c: int, lam: float, mu: float, theta: float, tol: float = 1e-14) -> ErlangA:
    """Erlang A from the stationary birth–death chain (numeric cross-check)."""
    weights = [1.0]
    k = 0
    while True:
        death = min(k + 1, c) * mu + max(k + 1 - c, 0) * theta
        w = weights[-1] * lam / death
        weights.append(w)
        k += 1
        if k > c and w < tol * sum(weights[-50:]):
            break
    z = sum(weights)
    pi = [w / z for w in weights]
    p_wait = sum(pi[c:])
    queue = sum((n - c) * p for n, p in enumerate(pi) if n > c)
    p_ab = theta * queue / lam
    return ErlangA(p_wait=p_wait, p_abandon=p_ab, mean_wait_s=queue / lam,
                   occupancy=lam * (1.0 - p_ab) / (c * mu))
