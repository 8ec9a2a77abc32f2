"""``Engine.next_deadline`` (issue 21, item 9): the earliest timer, per tenant or of all."""

from __future__ import annotations

from engine import Engine, rules_from_toml
from schemas.events import decode

RULES = "[assignment]\nacceptance_required = true\noffer_timeout_s = 3.0\n"


def apply(engine: Engine, line: str) -> list[dict]:
    return engine.apply(decode(line.encode()))


def test_next_deadline_is_the_earliest_timer_per_tenant_and_of_all() -> None:
    engine = Engine(rules_from_toml(RULES))
    assert engine.next_deadline() is None
    for tenant, t0 in (("a", 10_000), ("b", 5_000)):
        apply(engine, f'{{"type":"agent.state","id":"{tenant}1","ts":{t0},"tenant":"{tenant}",'
                      f'"agent":"x","status":"online","capacity":1}}')
        assert engine.next_deadline(tenant) is None
        apply(engine, f'{{"type":"chat.requested","id":"{tenant}2","ts":{t0},'
                      f'"tenant":"{tenant}","visitor":"v","chat":"c"}}')
        assert engine.next_deadline(tenant) == t0 + 3_000  # the offer's timeout
    assert engine.next_deadline() == 8_000
    assert engine.next_deadline("nobody") is None
    outs = apply(engine, '{"type":"clock","id":"k","ts":9000}')
    assert (outs[0]["type"], outs[0]["tenant"], outs[0]["ts"]) == ("chat.requeued", "b", 8_000)
    assert {o["tenant"] for o in outs} == {"b"}
    assert engine.next_deadline() == 13_000
