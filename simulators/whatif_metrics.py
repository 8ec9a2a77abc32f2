"""What-if metrics: the metrics module's ``Collector`` plus what a comparison needs.

:class:`WhatIfCollector` is :class:`simulators.metrics.Collector` (every
number of ``summary()`` is computed there, unchanged) with a few extras that
comparing candidates needs and the closed-loop summary does not carry:

- waits (mean, p90) and abandonment by the page the visitor asked from, and
  for cart + checkout chats together;
- abandonment of high-value chats: the visitor is a member of tier >= 3 or has
  a lifetime value >= ``HIGH_VALUE_LTV`` (2,000);
- occupancy per agent (chat-time held / capacity-time online) and its spread
  (standard deviation over agents with online time: 0 = perfectly even);
- over the day, in ``bins`` equal slices: the time-average number of chats
  waiting for a human and the service level of chats that entered the queue
  in the slice;
- the distribution of waits (101 quantiles).

:func:`comparison_table` prints candidates side by side; the best value of a
row (where "best" has a direction) is marked with ``*``.
"""

from __future__ import annotations

import math
from typing import Any

from simulators.metrics import Collector, cell, percentile

HIGH_VALUE_TIER = 3
HIGH_VALUE_LTV = 2000.0
CART_CHECKOUT = ("cart", "checkout")


class WhatIfCollector(Collector):
    def __init__(self, *, t0: int, t1: int, bins: int = 96,
                 busy_until_ms: int | None = None, wrap_up_ms: int = 0,
                 tenants: frozenset[str] | None = None) -> None:
        super().__init__(busy_until_ms=busy_until_ms, wrap_up_ms=wrap_up_ms, tenants=tenants)
        self.t0 = t0
        self.bin_ms = max(60_000, -(-(t1 - t0) // bins))
        self.nbins = max(1, -(-(t1 - t0) // self.bin_ms))
        self.page_waits: dict[str, list[int]] = {}
        self.high_value: set[tuple[str, str]] = set()
        self.hv_human = self.hv_abandoned = 0
        self.bin_human = [0] * self.nbins
        self.bin_within = [0] * self.nbins
        self.bin_queue = [0.0] * self.nbins
        self.waiting: set[tuple[str, str]] = set()
        self.q_last = t0
        # (tenant, agent) -> [held, capacity online, last t, busy ms, capacity ms]
        self.agent_int: dict[tuple[str, str], list[float]] = {}

    # ------------------------------------------------------------ helpers

    def _bin(self, ts: int) -> int:
        b = (ts - self.t0) // self.bin_ms
        return 0 if b < 0 else (self.nbins - 1 if b >= self.nbins else int(b))

    def _queue_to(self, ts: int) -> None:
        last = self.q_last
        if ts <= last:
            return
        n = len(self.waiting)
        if n:
            t = last
            while t < ts:
                b = self._bin(t)
                edge = self.t0 + (b + 1) * self.bin_ms
                nxt = ts if ts < edge or b == self.nbins - 1 else edge
                self.bin_queue[b] += n * (nxt - t)
                t = nxt
        self.q_last = ts

    def _agent_to(self, key: tuple[str, str], now: int) -> list[float]:
        a = self.agent_int.get(key)
        if a is None:
            a = self.agent_int[key] = [0, 0, now, 0.0, 0.0]
            return a
        hi = self.busy_until
        last = a[2]
        if now > last:
            b = now if now < hi else hi
            if b > last:
                a[3] += a[0] * (b - last)
                a[4] += a[1] * (b - last)
            a[2] = now
        return a

    # ------------------------------------------------------------ hooks

    def _hold(self, tenant: str, agent: str, delta: int, now: int) -> None:
        if self._in(tenant):
            self._agent_to((tenant, agent), now)[0] += delta
        super()._hold(tenant, agent, delta, now)

    def _agent_state(self, ev: dict[str, Any]) -> None:
        key = (ev["tenant"], ev["agent"])
        if not self._in(key[0]):
            super()._agent_state(ev)
            return
        a = self._agent_to(key, ev["ts"])
        super()._agent_state(ev)  # keeps the capacity an update leaves out
        a[1] = self.agents[key][1] if ev["status"] == "online" else 0

    def _arrived(self, ev: dict[str, Any]) -> None:
        cust = ev.get("customer")
        if cust and ((cust.get("member") and cust.get("tier", 0) >= HIGH_VALUE_TIER)
                     or cust.get("ltv", 0) >= HIGH_VALUE_LTV):
            self.high_value.add((ev["tenant"], ev["visitor"]))
        super()._arrived(ev)

    def output(self, o: dict[str, Any]) -> None:
        typ = o["type"]
        key = (o.get("origin") or o["tenant"], o["chat"]) if "chat" in o else None
        c = self.chats.get(key) if key is not None else None
        was_human = c.human if c is not None else True
        first = c is not None and c.assigned_ts < 0
        super().output(o)
        if c is None or key is None:
            return
        ts = o["ts"]
        page = c.page or "(none)"
        counted = c.counted
        if not was_human and c.human and counted:
            if (c.tenant, c.visitor) in self.high_value:
                self.hv_human += 1
            self.bin_human[self._bin(c.entered)] += 1
        if not counted:
            return
        if typ == "chat.queued" or typ == "chat.requeued":
            self._queue_to(ts)
            self.waiting.add(key)
        elif typ == "chat.assigned":
            self._queue_to(ts)
            self.waiting.discard(key)
            if first:
                w = ts - c.entered
                self.page_waits.setdefault(page, []).append(w)
                if w <= self.sl_ms:
                    self.bin_within[self._bin(c.entered)] += 1
        elif typ == "chat.abandoned":
            self._queue_to(ts)
            self.waiting.discard(key)
            if first and (c.tenant, c.visitor) in self.high_value:
                self.hv_abandoned += 1

    # ------------------------------------------------------------ report

    def end_at(self, ts: int) -> None:
        """The history ends at ``ts`` (its last event), whatever came last here:
        time integrals (occupancy, queue) run to it."""
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def summary(self) -> dict[str, Any]:
        doc = super().summary()
        end = self.last_ts if self.last_ts is not None else self.t0
        self._queue_to(min(end, self.busy_until))
        for key in list(self.agent_int):
            self._agent_to(key, end)
        doc["whatif"] = self._extras(doc["overall"]["by_page"])
        return doc

    def _extras(self, by_page: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """``by_page``: the overall summary's (chats for a human and abandoned by page)."""
        asked = sorted(p for p, row in by_page.items() if row["human"])

        def group(pages: tuple[str, ...] | None) -> dict[str, Any]:
            names = [p for p in asked if pages is None or p in pages]
            waits = sorted(w for p in self.page_waits if pages is None or p in pages
                           for w in self.page_waits[p])
            human = sum(by_page[p]["human"] for p in names)
            aband = sum(by_page[p]["abandoned"] for p in names)
            return {
                "human": human,
                "abandoned": aband,
                "abandonment_rate": round(aband / human, 6) if human else None,
                "wait_mean_s": round(sum(waits) / len(waits) / 1000, 3) if waits else None,
                "wait_p90_s": round(percentile(waits, 0.9) / 1000, 3) if waits else None,
            }

        occ = [a[3] / a[4] for a in self.agent_int.values() if a[4] > 0]
        spread = None
        if len(occ) > 1:
            m = sum(occ) / len(occ)
            spread = round(math.sqrt(sum((x - m) ** 2 for x in occ) / len(occ)), 6)
        waits = sorted(w for ws in self.page_waits.values() for w in ws)
        cdf = ([round(percentile(waits, q / 100) / 1000, 3) for q in range(101)]
               if waits else [])
        span = self.bin_ms
        return {
            "pages": {p: group((p,)) for p in asked},
            "cart_checkout": group(CART_CHECKOUT),
            "high_value": {
                "human": self.hv_human, "abandoned": self.hv_abandoned,
                "abandonment_rate": (round(self.hv_abandoned / self.hv_human, 6)
                                     if self.hv_human else None),
            },
            "agent_occupancy": sorted(round(x, 4) for x in occ),
            "occupancy_spread": spread,
            "wait_quantiles_s": cdf,
            "series": {
                "t0": self.t0, "bin_ms": span,
                "queue": [round(q / span, 3) for q in self.bin_queue],
                "human": list(self.bin_human),
                "service_level": [round(w / h, 4) if h else None
                                  for w, h in zip(self.bin_within, self.bin_human, strict=True)],
            },
        }


class Figures:
    """A run's what-if figures: over the tenants named (every tenant where none
    are), and each of them on its own where several are (``by_tenant``)."""

    def __init__(self, *, t0: int, t1: int, wrap_up_ms: int = 0,
                 tenants: tuple[str, ...] = ()) -> None:
        only = frozenset(tenants) or None

        def one(names: frozenset[str] | None) -> WhatIfCollector:
            return WhatIfCollector(t0=t0, t1=t1, busy_until_ms=t1, wrap_up_ms=wrap_up_ms,
                                   tenants=names)

        self.all = one(only)
        self.each = {n: one(frozenset((n,))) for n in sorted(only)} if only and len(only) > 1 \
            else {}
        parts = [self.all, *self.each.values()]
        if len(parts) == 1:
            self.event, self.output = self.all.event, self.all.output
        else:
            def event(ev: dict[str, Any]) -> None:
                for c in parts:
                    c.event(ev)

            def output(o: dict[str, Any]) -> None:
                for c in parts:
                    c.output(o)

            self.event, self.output = event, output
        self.parts = parts

    def end_at(self, ts: int) -> None:
        for c in self.parts:
            c.end_at(ts)

    def summary(self) -> dict[str, Any]:
        doc = self.all.summary()
        if self.each:
            doc["by_tenant"] = {n: c.summary() for n, c in self.each.items()}
        return doc


# ---------------------------------------------------------------- the table

def _get(summary: dict[str, Any], path: str) -> Any:
    v: Any = summary
    for part in path.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(part)
    return v


#: (label, path in a candidate's summary, format, better: "low", "high" or "")
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("chats for a human", "overall.human", "d", ""),
    ("service level (<= 20 s)", "overall.service_level", "%", "high"),
    ("wait mean s", "overall.wait_mean_s", "f", "low"),
    ("wait p90 s", "overall.wait_p90_s", "f", "low"),
    ("cart+checkout wait mean s", "whatif.cart_checkout.wait_mean_s", "f", "low"),
    ("cart+checkout wait p90 s", "whatif.cart_checkout.wait_p90_s", "f", "low"),
    ("checkout wait mean s", "whatif.pages.checkout.wait_mean_s", "f", "low"),
    ("abandonment", "overall.abandonment_rate", "%", "low"),
    ("cart+checkout abandonment", "whatif.cart_checkout.abandonment_rate", "%", "low"),
    ("high-value abandonment", "whatif.high_value.abandonment_rate", "%", "low"),
    ("sticky hit rate", "overall.sticky_hit_rate", "%", "high"),
    ("skill match rate", "overall.skill_match_rate", "%", "high"),
    ("occupancy", "overall.occupancy", "%", ""),
    ("occupancy spread (sd)", "whatif.occupancy_spread", "%", "low"),
    ("orders after chat", "overall.chat_orders", "d", "high"),
    ("revenue after chat", "overall.chat_revenue", "m", "high"),
)


def best_of(values: list[Any], better: str) -> set[int]:
    """Indexes of the best values of a row (ties share the mark)."""
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    if not better or len(known) < 2:
        return set()
    target = (min if better == "low" else max)(v for v, _ in known)
    if all(v == target for v, _ in known):
        return set()
    return {i for v, i in known if v == target}


def table_rows(names: list[str], summaries: list[dict[str, Any]],
               marked: int | None = None) -> list[list[str]]:
    """Header and rows as strings; ``*`` marks the best candidate(s) of a row.

    ``marked`` columns from this index on take part in the marking (an
    earlier column, e.g. the recorded trace, is shown but not ranked).
    """
    first = marked or 0
    out = [["", *names]]
    for label, path, fmt, better in ROWS:
        values = [_get(s, path) for s in summaries]
        best = {i + first for i in best_of(values[first:], better)}
        out.append([label, *(cell(v, fmt) + ("*" if i in best else " ")
                             for i, v in enumerate(values))])
    return out


def comparison_table(names: list[str], summaries: list[dict[str, Any]],
                     marked: int | None = None) -> str:
    rows = table_rows(names, summaries, marked)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])]
        for i in range(1, len(r)):
            text = r[i] if k else r[i] + " "
            cells.append(text.rjust(widths[i] + (1 if k == 0 else 0)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def value(summary: dict[str, Any], path: str) -> Any:
    """A metric of a candidate's summary by dotted path (``None`` where undefined)."""
    return _get(summary, path)
