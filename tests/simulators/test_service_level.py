"""The metrics' service level has one definition everywhere: answered within
``sl_s`` / chats for a human (abandoned and still-waiting ones included), for
the whole run, per tenant and per page; so the pages add up to the tenant and
the tenants to the whole (simulators/metrics.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from engine import Engine, Rules
from schemas.events import validate
from simulators.metrics import collect
from tests.strategies import rules, streams


def within(row: dict[str, Any]) -> int:
    """Chats answered within the threshold, back from a share and its denominator."""
    sl, human = row["service_level"], row["human"]
    if human == 0:
        assert sl is None
        return 0
    n = round(sl * human)
    assert abs(n - sl * human) < 1e-3, (sl, human)
    return n


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), streams(max_size=80))
def test_service_level_by_page_and_tenant_adds_up(r: Rules, events: list[dict[str, Any]]) -> None:
    eng = Engine(r)
    valid = [validate(ev) for ev in events]
    outputs = [o for i, ev in enumerate(valid) for o in eng.apply(ev, i)]
    summary = collect(valid, outputs).summary()
    parts = [summary["overall"], *summary["tenants"].values()]
    for part in parts:
        pages = part["by_page"].values()
        for key in ("chats", "human", "assigned", "abandoned"):
            assert sum(p[key] for p in pages) == part[key], key
        assert sum(within(p) for p in pages) == within(part)
        for row in (part, *pages):
            assert 0 <= within(row) <= row["assigned"] <= row["human"] <= row["chats"]
            assert row["abandoned"] <= row["human"]
    assert sum(within(t) for t in summary["tenants"].values()) == within(summary["overall"])
