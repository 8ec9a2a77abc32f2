"""The classes of policy ``value``, fitted from a recorded history.

Each page type a chat was asked from is a class with three parameters, read
off the trace the what-if reads (``simulators.whatif.read_trace``, whose
fits this reuses rather than repeats):

- ``stake``: what serving such a chat promptly is worth: the order rate
  after a served chat on that page at no wait (the what-if's ``p(page)`` of
  ``p·exp(-wait/tau)``) times the mean order that followed;
- ``handle_s``: the mean handle time of the page's served chats (the
  what-if's ``handle_pool``);
- ``patience_s``: the visitors' mean patience, censored (time exposed to
  waiting / visitors who gave up: the what-if's ``exposure_by_page``, the
  page's share of its ``patience_mean_ms``).

A page with fewer than ``MIN_CHATS`` observations for a parameter (served
chats for the order rate and the handle time, visitors who gave up for the
patience) takes the whole trace's value; ``default`` is the whole trace's class, for pages the
trace has no chats from. The index that orders the queue is
``stake x patience_s / handle_s``: Atar, Giat & Shimkin's c·mu/theta (2010).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine import Rules, parse_rules
from simulators.rules_toml import _key, to_toml
from simulators.whatif import Trace

MIN_CHATS = 20


@dataclass(frozen=True)
class ValueClass:
    page: str
    stake: float
    handle_s: float
    patience_s: float
    chats: int  # chats asked for a person from the page
    served: int
    gave_up: int
    order_rate: float
    order_value: float

    @property
    def index(self) -> float:
        return self.stake * self.patience_s / self.handle_s


def fit(trace: Trace) -> list[ValueClass]:
    """One class per page type of the trace's chats for a person, then ``default``."""
    chats: dict[str, int] = {}
    for o in trace.chats.values():
        if o.human:
            chats[o.page or ""] = chats.get(o.page or "", 0) + 1
    handles = [h for pool in trace.handle_pool.values() for h in pool]
    handle_all = sum(handles) / len(handles) / 1000 if handles else 1.0
    patience_all = (trace.patience_mean_ms / 1000 if math.isfinite(trace.patience_mean_ms)
                    else 3600.0)  # nobody gave up: patience outlasts any wait seen
    amounts = [a for pool in trace.amount_pool.values() for a in pool]
    amount_all = sum(amounts) / len(amounts) if amounts else 0.0
    served_all = max(1, len(handles))
    rate_all = sum(trace.order_p.get(p, 0.0) * len(pool)
                   for p, pool in trace.handle_pool.items()) / served_all

    def one(page: str, n: int, key: str | None) -> ValueClass:
        pool = trace.handle_pool.get(key, []) if key is not None else []
        served = len(pool) if key is not None else len(handles)
        handle = sum(pool) / len(pool) / 1000 if len(pool) >= MIN_CHATS else handle_all
        exposed, gave_up = (trace.exposure_by_page.get(key, (0, 0)) if key is not None else
                            (sum(e for e, _ in trace.exposure_by_page.values()),
                             sum(g for _, g in trace.exposure_by_page.values())))
        patience = exposed / gave_up / 1000 if gave_up >= MIN_CHATS else patience_all
        orders = trace.amount_pool.get(key, []) if key is not None else []
        amount = sum(orders) / len(orders) if len(orders) >= MIN_CHATS else amount_all
        rate = trace.order_p.get(key, 0.0) if key is not None and served >= MIN_CHATS \
            else rate_all
        return ValueClass(page, round(rate * amount, 2), round(max(handle, 1.0), 1),
                          round(max(patience, 1.0), 1), n, served, gave_up,
                          round(rate, 4), round(amount, 2))

    out = [one(page or "default", n, page) for page, n in sorted(chats.items()) if page]
    # the whole trace's class (pageless chats are in it, as in every figure above)
    out.append(one("default", sum(chats.values()), None))
    return out


def value_rules(base: Rules, classes: list[ValueClass], overflow_by_value: bool = True) -> Rules:
    """The base rules with policy ``value``, the fitted classes and (unless told
    not to) overflow by value."""
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v)
                            for k, v in base.data.items()}
    data["policy"] = "value"
    data["value"] = {**data.get("value", {}), "overflow_by_value": overflow_by_value, "pages": {
        c.page: {"stake": c.stake, "handle_s": c.handle_s, "patience_s": c.patience_s}
        for c in classes}}
    return parse_rules(data)


def rules_text(rules: Rules, classes: list[ValueClass], source: str) -> str:
    """The rules as TOML, each class with what it was fitted from in comments."""
    data = dict(rules.data)
    value = dict(data.pop("value"))
    pages = value.pop("pages")
    head = (f"rules {rules.hash}: policy value, classes fitted by routeq fit from {source}\n"
            "a chat's page part = scale x stake x patience_s / handle_s (its value index)")
    lines = [to_toml(data, head).rstrip("\n"), "", "[value]",
             f"loyalty = {'true' if value['loyalty'] else 'false'}  # add the priority's "
             "loyalty points (member, orders, ltv)",
             f"scale = {value['scale']!r}  # points per unit of stake x patience / handle",
             f"overflow_by_value = {'true' if value['overflow_by_value'] else 'false'}  # a "
             "class overflows once its value at risk, stake x wait / patience, is a "
             "default chat's at [overflow] after_s"]
    by_page = {c.page: c for c in classes}
    for page, cls in pages.items():
        c = by_page.get(page)
        lines += ["", f"[value.pages.{_key(page)}]"]
        if c is not None:
            lines.append(f"# {c.chats:,} chats for a person, {c.served:,} served, "
                         f"{c.gave_up:,} gave up; order rate after a chat "
                         f"{c.order_rate:.1%} x mean order {c.order_value:,.2f}; "
                         f"index {c.index:,.1f}")
        lines += [f"stake = {cls['stake']!r}", f"handle_s = {cls['handle_s']!r}",
                  f"patience_s = {cls['patience_s']!r}"]
    return "\n".join(lines) + "\n"


def describe(classes: list[ValueClass]) -> str:
    head = (f"{'page':14} {'chats':>7} {'order rate':>10} {'mean order':>10} {'stake':>8} "
            f"{'handle s':>8} {'patience s':>10} {'index':>8}")
    rows = [head] + [
        f"{c.page:14} {c.chats:>7,} {c.order_rate:>10.1%} {c.order_value:>10,.2f} "
        f"{c.stake:>8,.2f} {c.handle_s:>8.1f} {c.patience_s:>10.1f} "
        f"{(c.index if math.isfinite(c.index) else 0):>8,.1f}" for c in classes]
    return "\n".join(rows)
