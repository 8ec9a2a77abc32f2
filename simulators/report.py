"""The what-if report: one self-contained HTML file (inline SVG drawn here, no
scripts, no fonts or styles from the network), so it opens offline anywhere.

Written for the customer-service manager first, the analyst last:

1. a paragraph in plain words, generated from the numbers: what history was
   re-simulated, which rules do best and on what, at what cost, and how sure
   the figures are (the null test; ``routeq tune``: against the current rules);
2. the null test figure by figure (``routeq compare`` only): recorded,
   re-simulated under the recorded rules, the noise, a verdict; what the
   history holds; the likely causes where it failed;
3. the figures side by side, in a manager's words and units (the terminal's
   labels, ``whatif_metrics.ROWS``, are mapped here), then one table per
   tenant where the figures cover several;
4. the plots: tune's Pareto front, the distribution of waits, the queue and
   the share answered within 20 s over the day, the average wait by page
   (pages with no answered chat and chats with no page left out, the latter
   counted in a note), and each agent's load;
5. the method, for the analyst, last: the history, the models fitted to it,
   the seeds, the rules hashes, the noise, and how long it all took.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from pathlib import Path
from typing import Any

from simulators import null_test
from simulators.null_test import resolution
from simulators.whatif_metrics import HIGH_VALUE_LTV, HIGH_VALUE_TIER, ROWS, best_of, value

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#17becf", "#7f7f7f", "#bcbd22")
W, H = 640, 300
ML, MR, MT, MB = 56, 16, 28, 44

Series = tuple[str, str, list[tuple[float, float]]]


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _nice(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9:  # the last tick covers the data
        ticks.append(round(start + len(ticks) * step, 10))
    return ticks


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v == int(v):
        return str(int(v))
    return f"{v:g}"


def _frame(title: str, xlabel: str, ylabel: str, xs: list[float], ys: list[float],
           xfmt: Any = _fmt, yfmt: Any = _fmt) -> tuple[list[str], Any, Any]:
    x0, x1 = xs[0], xs[-1]
    y0, y1 = ys[0], ys[-1]
    pw, ph = W - ML - MR, H - MT - MB

    def sx(x: float) -> float:
        return ML + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return MT + ph - (y - y0) / ((y1 - y0) or 1) * ph

    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
             f'role="img" aria-label="{_esc(title)}">',
             f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
             f'<text x="{W / 2}" y="17" text-anchor="middle" font-size="14" '
             f'font-weight="bold">{_esc(title)}</text>']
    for y in ys:
        parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                     'stroke="#e5e5e5"/>')
        parts.append(f'<text x="{ML - 5}" y="{sy(y) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{_esc(yfmt(y))}</text>')
    for x in xs:
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{MT + ph}" y2="{MT + ph + 4}" '
                     'stroke="#333"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{MT + ph + 16}" text-anchor="middle" '
                     f'font-size="11">{_esc(xfmt(x))}</text>')
    parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{MT + ph}" y2="{MT + ph}" stroke="#333"/>')
    parts.append(f'<line x1="{ML}" x2="{ML}" y1="{MT}" y2="{MT + ph}" stroke="#333"/>')
    parts.append(f'<text x="{ML + pw / 2}" y="{H - 6}" text-anchor="middle" '
                 f'font-size="12">{_esc(xlabel)}</text>')
    parts.append(f'<text x="14" y="{MT + ph / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 14 {MT + ph / 2})">{_esc(ylabel)}</text>')
    return parts, sx, sy


def _legend(names: list[str], colors: list[str]) -> str:
    items = "".join(f'<span class="key"><i style="background:{c}"></i>{_esc(n)}</span>'
                    for n, c in zip(names, colors, strict=True))
    return f'<div class="legend">{items}</div>'


def line_chart(title: str, series: list[Series], xlabel: str, ylabel: str,
               xfmt: Any = _fmt, yfmt: Any = _fmt, ymin: float | None = 0.0,
               ymax: float | None = None, step: bool = False) -> str:
    pts = [p for _, _, s in series for p in s]
    if not pts:
        return f'<p class="empty">{_esc(title)}: no data</p>'
    xs = _nice(min(p[0] for p in pts), max(p[0] for p in pts))
    lo = ymin if ymin is not None else min(p[1] for p in pts)
    hi = ymax if ymax is not None else 1.05 * max(p[1] for p in pts)
    ys = _nice(lo, hi if hi > lo else lo + 1)
    parts, sx, sy = _frame(title, xlabel, ylabel, [xs[0], xs[-1]] if len(xs) < 2 else xs, ys,
                           xfmt, yfmt)
    for name, color, s in series:
        if not s:
            continue
        d = []
        for k, (x, y) in enumerate(s):
            if step and k:
                d.append(f"L{sx(x):.1f},{sy(s[k - 1][1]):.1f}")
            d.append(f"{'M' if k == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}")
        parts.append(f'<path class="series" data-name="{_esc(name)}" d="{" ".join(d)}" '
                     f'fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts) + _legend([n for n, _, _ in series], [c for _, c, _ in series])


def bar_chart(title: str, groups: list[str], series: list[tuple[str, str, list[float | None]]],
              ylabel: str, unit: str = "") -> str:
    vals = [v for _, _, vs in series for v in vs if v is not None]
    if not groups or not vals:
        return f'<p class="empty">{_esc(title)}: no data</p>'
    ys = _nice(0.0, 1.08 * max(vals) or 1.0)
    parts, _, sy = _frame(title, "page the visitor asked from", ylabel, [0.0, 1.0], ys,
                          lambda x: "", _fmt)
    pw = W - ML - MR
    gw = pw / len(groups)
    bw = gw * 0.8 / max(1, len(series))
    for g, name in enumerate(groups):
        gx = ML + g * gw + gw * 0.1
        parts.append(f'<text x="{ML + g * gw + gw / 2:.1f}" y="{H - MB + 16}" '
                     f'text-anchor="middle" font-size="11">{_esc(name)}</text>')
        for k, (sname, color, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            y = sy(v)
            parts.append(f'<rect class="bar" data-name="{_esc(sname)}" x="{gx + k * bw:.1f}" '
                         f'y="{y:.1f}" width="{bw * 0.92:.1f}" height="{sy(0) - y:.1f}" '
                         f'fill="{color}"><title>{_esc(sname)} {_esc(name)}: '
                         f'{v:.1f}{_esc(unit)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts) + _legend([n for n, _, _ in series], [c for _, c, _ in series])


def scatter_chart(title: str, points: list[tuple[float, float, str]], front: list[int],
                  current: tuple[float, float] | None, xlabel: str, ylabel: str,
                  xfmt: Any = _fmt, yfmt: Any = _fmt) -> str:
    """Every candidate a dot; the Pareto front joined by a line; the current rules a ring."""
    # the front's indexes are into ``points``: a point without figures is skipped
    known = [(k, p) for k, p in enumerate(points) if p[0] is not None and p[1] is not None]
    pts = [p for _, p in known]
    if not pts:
        return f'<p class="empty">{_esc(title)}: no data</p>'
    allx = [p[0] for p in pts] + ([current[0]] if current else [])
    ally = [p[1] for p in pts] + ([current[1]] if current else [])
    xs = _nice(min(allx), max(allx) if max(allx) > min(allx) else min(allx) + 1e-3)
    ys = _nice(min(ally), max(ally) if max(ally) > min(ally) else min(ally) + 1)
    parts, sx, sy = _frame(title, xlabel, ylabel, xs, ys, xfmt, yfmt)
    on_front = set(front)
    for k, (x, y, label) in known:
        cls = "front" if k in on_front else "tried"
        parts.append(f'<circle class="{cls}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" '
                     f'fill="{"#d62728" if cls == "front" else "#7f7f7f"}"><title>'
                     f'{_esc(label)}: {x:.4f}, {y:,.0f}</title></circle>')
    line = [points[i] for i in front if points[i][0] is not None and points[i][1] is not None]
    if len(line) > 1:
        d = " ".join(f"{'M' if k == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                     for k, (x, y, _) in enumerate(line))
        parts.append(f'<path class="series" data-name="Pareto front" d="{d}" fill="none" '
                     'stroke="#d62728" stroke-width="1.5"/>')
    if current is not None and current[0] is not None and current[1] is not None:
        parts.append(f'<circle class="current" cx="{sx(current[0]):.1f}" '
                     f'cy="{sy(current[1]):.1f}" r="7" fill="none" stroke="#1f77b4" '
                     'stroke-width="2"><title>current rules</title></circle>')
    parts.append("</svg>")
    return "".join(parts) + _legend(["Pareto front", "other candidates", "current rules"],
                                    ["#d62728", "#7f7f7f", "#1f77b4"])


def _compact(v: float) -> str:
    """A tick of a money axis: 64k for 64,000, so that it fits the margin."""
    if abs(v) >= 10_000:
        return f"{v / 1000:,.0f}k" if v % 1000 == 0 else f"{v / 1000:,.1f}k"
    return _fmt(v)


def _clock(t0: int, bin_ms: int) -> Any:
    def f(h: float) -> str:
        moment = dt.datetime.fromtimestamp((t0 + h * 3_600_000) / 1000, tz=dt.UTC)
        return moment.strftime("%H:%M")
    return f


# ---------------------------------------------------------------- words and units

#: a figure's label for a manager, by its path in a summary, and its kind (how its
#: value is written): "count", "share" (%), "seconds", "money", "spread" (points)
LABELS: dict[str, tuple[str, str]] = {
    "overall.human": ("Chats for an agent", "count"),
    "overall.service_level": ("Answered within {sl} s", "share"),
    "overall.wait_mean_s": ("Average wait", "seconds"),
    "overall.wait_p90_s": ("Wait 9 in 10 chats stay under", "seconds"),
    "whatif.cart_checkout.wait_mean_s": ("Average wait, cart and checkout", "seconds"),
    "whatif.cart_checkout.wait_p90_s": ("Wait 9 in 10 cart and checkout chats stay under",
                                        "seconds"),
    "whatif.pages.checkout.wait_mean_s": ("Average wait, checkout", "seconds"),
    "overall.abandonment_rate": ("Gave up waiting", "share"),
    "whatif.cart_checkout.abandonment_rate": ("Gave up waiting, cart and checkout", "share"),
    "whatif.high_value.abandonment_rate": ("Gave up waiting, valuable customers", "share"),
    "overall.sticky_hit_rate": ("Back with the agent they had before", "share"),
    "overall.skill_match_rate": ("Given an agent with the right skill", "share"),
    "overall.occupancy": ("Agents' time busy with chats", "share"),
    "whatif.occupancy_spread": ("Uneven load across agents", "spread"),
    "overall.chat_orders": ("Orders within an hour of a chat", "count"),
    "overall.chat_revenue": ("Revenue within an hour of a chat", "money"),
}
_KINDS = {"d": "count", "%": "share", "f": "seconds", "m": "money"}
DASH = "\u2013"


def _sl(summaries: list[dict[str, Any]]) -> float:
    for s in summaries:
        v = value(s, "overall.sl_s")
        if isinstance(v, int | float):
            return float(v)
    return 20.0


def label_of(path: str, fallback: str, sl: float = 20.0) -> str:
    return LABELS[path][0].format(sl=f"{sl:g}") if path in LABELS else fallback


def kind_of(path: str, fmt: str = "") -> str:
    return LABELS[path][1] if path in LABELS else _KINDS.get(fmt, "number")


def fmt_value(v: Any, kind: str) -> str:
    """A figure as a manager reads it: 70.6%, 10.6 s, 68,045, 4.0 pts."""
    if v is None or isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return DASH if v is None or not isinstance(v, str) else v
    if kind == "share":
        return f"{100 * v:.1f}%"
    if kind == "seconds":
        return f"{v:,.1f} s"
    if kind == "money":
        return f"{v:,.0f}"
    if kind == "spread":
        return f"{100 * v:.1f} pts"
    if kind == "count":
        return f"{v:,.0f}"
    return f"{v:,.4g}"


def fmt_noise(v: Any, kind: str) -> str:
    """A tolerance: the same units, more digits for small ones."""
    if v is None or not isinstance(v, int | float):
        return DASH
    if kind in ("share", "occupancy", "spread"):
        return f"\u00b1 {100 * v:.2f} pts"
    if kind == "seconds":
        return f"\u00b1 {v:,.1f} s"
    if kind == "money":
        return f"\u00b1 {v:,.0f}"
    return f"\u00b1 {v:,.4g}"


def _join(items: list[str], word: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _duration(ms: float) -> str:
    minutes = round(ms / 60_000)
    if minutes < 60:
        return f"{minutes} min"
    h, m = divmod(minutes, 60)
    if h >= 48:
        return f"{h / 24:.1f} days"
    return f"{h} h {m} min" if m else f"{h} h"


def _period(summary: dict[str, Any], exact: dict[str, Any] | None = None) -> str:
    """When the history ran: ``exact`` (the doc's ``span``: its first and last
    event), else from its figures over the day (to the slice: about)."""
    if exact:
        t0, span = int(exact["t0"]), int(exact["t_end"]) - int(exact["t0"])
    else:
        ser = value(summary, "whatif.series") or {}
        bins = len(ser.get("queue", []))
        if not ser or not bins:
            return ""
        t0 = int(ser.get("t0", 0))
        span = round(int(ser.get("bin_ms", 60_000)) * bins / 60_000) * 60_000
    a = dt.datetime.fromtimestamp(t0 / 1000, tz=dt.UTC)
    b = dt.datetime.fromtimestamp((t0 + span) / 1000, tz=dt.UTC)
    day = f"{a.day} {a:%b %Y}"
    end = f"{b:%H:%M}" if b.date() == a.date() else f"{b.day} {b:%b %Y} {b:%H:%M}"
    return f"{day}, {a:%H:%M} to {end} UTC, about {_duration(span)}"


# ---------------------------------------------------------------- the plain summary

#: a figure no summary holds: abandonment of the chats from pages other than
#: cart and checkout (what favouring those can cost the others)
OTHER_PAGES = "other_pages.abandonment_rate"


def figure(summary: dict[str, Any], path: str) -> Any:
    """A figure of a summary by dotted path, :data:`OTHER_PAGES` included."""
    if path != OTHER_PAGES:
        return value(summary, path)
    human, gave_up = value(summary, "overall.human"), value(summary, "overall.abandoned")
    cc_human = value(summary, "whatif.cart_checkout.human")
    cc_gave_up = value(summary, "whatif.cart_checkout.abandoned")
    if not all(isinstance(x, int) for x in (human, gave_up, cc_human, cc_gave_up)):
        return None
    n = human - cc_human
    return round((gave_up - cc_gave_up) / n, 6) if n > 0 and cc_human > 0 else None


#: the figures the summary talks about, in the order it mentions them:
#: (path, better, phrase when better, phrase when worse); {a} the reference's
#: value, {b} the candidate's, {d} the relative change
TOLD: tuple[tuple[str, str, str, str], ...] = (
    ("overall.service_level", "high",
     "answers {b} of chats within {sl} s instead of {a}",
     "answers only {b} of chats within {sl} s instead of {a}"),
    ("whatif.pages.checkout.wait_mean_s", "low",
     "cuts checkout waits from {a} to {b} on average",
     "lengthens checkout waits from {a} to {b} on average"),
    ("overall.wait_mean_s", "low",
     "cuts the average wait from {a} to {b}",
     "lengthens the average wait from {a} to {b}"),
    ("overall.abandonment_rate", "low",
     "loses fewer waiting visitors ({b} give up instead of {a})",
     "loses more waiting visitors ({b} give up instead of {a})"),
    ("whatif.cart_checkout.abandonment_rate", "low",
     "loses fewer cart and checkout visitors ({b} give up instead of {a})",
     "loses more cart and checkout visitors ({b} give up instead of {a})"),
    (OTHER_PAGES, "low",
     "loses fewer visitors from the other pages ({b} give up instead of {a})",
     "loses more visitors from the other pages ({b} give up instead of {a})"),
    ("whatif.high_value.abandonment_rate", "low",
     "loses fewer valuable customers ({b} give up instead of {a})",
     "loses more valuable customers ({b} give up instead of {a})"),
    ("overall.chat_revenue", "high",
     "brings {b} in revenue after chats instead of {a} ({d})",
     "brings {b} in revenue after chats instead of {a} ({d})"),
    ("whatif.occupancy_spread", "low",
     "spreads the work more evenly over agents (spread {b} instead of {a})",
     "loads agents less evenly (spread {b} instead of {a})"),
    ("overall.sticky_hit_rate", "high",
     "sends more returning visitors back to the agent they had ({b} instead of {a})",
     "sends fewer returning visitors back to the agent they had ({b} instead of {a})"),
)
#: checkout alone where the history has checkout chats, else cart and checkout
CHECKOUT_FALLBACK = ("whatif.pages.checkout.wait_mean_s", "whatif.cart_checkout.wait_mean_s",
                     "cart and checkout waits")


#: the chats a share is of (its denominator), for the shares that say
DENOMINATORS = {"overall.service_level": "overall.human",
                "overall.abandonment_rate": "overall.human",
                "whatif.high_value.abandonment_rate": "whatif.high_value.human",
                "whatif.cart_checkout.abandonment_rate": "whatif.cart_checkout.human"}


def _denominator(ref: dict[str, Any], path: str) -> Any:
    if path == OTHER_PAGES:
        human, cc = value(ref, "overall.human"), value(ref, "whatif.cart_checkout.human")
        return human - cc if isinstance(human, int) and isinstance(cc, int) else None
    return value(ref, DENOMINATORS[path]) if path in DENOMINATORS else None


def _floor(path: str, kind: str, ref: dict[str, Any], a: float) -> float:
    """The resolution of a figure, as the null test has it."""
    n = _denominator(ref, path) if kind == "share" else None
    return resolution(kind, a, float(n) if isinstance(n, int | float) and n > 0 else None)


def _noise(doc: dict[str, Any]) -> dict[str, float]:
    """The null test's tolerance by figure path (none for tune)."""
    rows = (doc.get("null_test") or {}).get("rows") or []
    return {r["path"]: float(r["tolerance"]) for r in rows
            if isinstance(r.get("tolerance"), int | float)}


#: the main figures: the summary calls a candidate better on these first
MAIN = ("overall.service_level", "overall.abandonment_rate", "overall.chat_revenue")


def differences(ref: dict[str, Any], cand: dict[str, Any], noise: dict[str, float],
                sl: float = 20.0) -> list[tuple[str, bool, str]]:
    """Where ``cand`` differs from ``ref`` beyond noise (the null test's where it
    measured the figure, else the figure's resolution): (path, better, words),
    the main figures first."""
    out: list[tuple[str, bool, str]] = []
    for path, direction, up, down in TOLD:
        what = path
        if path == CHECKOUT_FALLBACK[0] and value(ref, path) is None:
            what = CHECKOUT_FALLBACK[1]
            up = up.replace("checkout waits", CHECKOUT_FALLBACK[2])
            down = down.replace("checkout waits", CHECKOUT_FALLBACK[2])
        a, b = figure(ref, what), figure(cand, what)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            continue
        kind = kind_of(what) if what != OTHER_PAGES else "share"
        if abs(b - a) <= max(noise.get(what, 0.0), _floor(what, kind, ref, a)) + 1e-9:
            continue
        rel = f"{(b - a) / a:+.1%}".replace("-", "\u2212") if a else ""
        better = (b > a) == (direction == "high")
        out.append((what, better, (up if better else down).format(
            a=fmt_value(a, kind), b=fmt_value(b, kind), d=rel, sl=f"{sl:g}")))
    out.sort(key=lambda d: d[0] not in MAIN)
    return out


def changes(ref: dict[str, Any], cand: dict[str, Any], noise: dict[str, float],
            sl: float = 20.0) -> tuple[list[str], list[str]]:
    """What ``cand`` does better and worse than ``ref``, in words, the main
    figures first; a difference within the noise is left out."""
    return _split(differences(ref, cand, noise, sl))


def _score(diffs: list[tuple[str, bool, str]]) -> tuple[int, int]:
    """(main figures won less lost, other figures won less lost)."""
    main = sum(1 if ok else -1 for p, ok, _ in diffs if p in MAIN)
    rest = sum(1 if ok else -1 for p, ok, _ in diffs if p not in MAIN)
    return main, rest


def _marks(summaries: list[dict[str, Any]]) -> list[int]:
    """For each summary, on how many ranked rows it is (one of) the best."""
    n = [0] * len(summaries)
    for _, path, _, better in ROWS:
        for i in best_of([value(s, path) for s in summaries], better):
            n[i] += 1
    return n


def _rank_key(s: dict[str, Any], score: tuple[int, int], marks: int,
              i: int) -> tuple[float, ...]:
    sl = value(s, "overall.service_level")
    rev = value(s, "overall.chat_revenue")
    ab = value(s, "overall.abandonment_rate")
    return (-score[0], -score[1], -marks, -(sl if sl is not None else -1),
            -(rev if rev is not None else -1), ab if ab is not None else 2, i)


def verdicts(doc: dict[str, Any]) -> list[list[tuple[str, bool, str]]]:
    """For each candidate, where it differs from the first (the recorded or the
    current rules) beyond noise: :func:`differences`."""
    cands = doc["candidates"]
    sl = _sl([c["summary"] for c in cands])
    noise = _noise(doc)
    return [differences(cands[0]["summary"], c["summary"], noise, sl) for c in cands]


def winner(doc: dict[str, Any]) -> int:
    """The index in ``doc["candidates"]`` of the rules the report calls best.

    tune: its best setting (ranked by its objective: the first after the
    current rules). compare: the candidate that beats the recorded rules,
    beyond noise, on more of the main figures (answered in time, gave up
    waiting, revenue after chat) than it loses, or on as many and then on more
    of the other figures of the summary (``TOLD``) than it loses; 0 (the
    recorded rules) where none does. Among several: the same order, then the
    best marks in the table, the share answered in time, the revenue, the
    abandonment."""
    cands = doc["candidates"]
    if len(cands) < 2:
        return 0
    if "objective" in doc:
        return 1
    i = _next_best(doc)
    if i is None:
        return 0
    return i if _score(verdicts(doc)[i]) > (0, 0) else 0


def _next_best(doc: dict[str, Any]) -> int | None:
    """The best candidate other than the recorded rules (and their copies)."""
    cands = doc["candidates"]
    others = [i for i in range(1, len(cands)) if cands[i].get("rules") != cands[0].get("rules")]
    if not others:
        return None
    summaries = [c["summary"] for c in cands]
    marks = _marks(summaries)
    told = verdicts(doc)
    return min(others, key=lambda i: _rank_key(summaries[i], _score(told[i]), marks[i], i))


def _name(c: dict[str, Any]) -> str:
    return f"<b>{_esc(c['name'])}</b>"


def _setting(x: Any) -> str:
    if isinstance(x, dict):
        return ", ".join(f"{k} {v}" for k, v in x.items())
    return str(x)


def _history_sentence(doc: dict[str, Any], n_rules: int, tune: bool) -> str:
    rec = doc.get("recorded") or {}
    chats = int(value(rec, "overall.chats") or 0)
    human = int(value(rec, "overall.human") or 0)
    whole = (doc.get("model") or {}).get("chats")
    period = _period(rec, doc.get("span"))
    what = (f"{_plural(n_rules, 'setting', 'settings')} of the rules and under the current "
            "rules" if tune
            else _plural(n_rules, "set of routing rules", "sets of routing rules"))
    first = (f"We replayed the history <code>{_esc(doc['trace'])}</code>"
             f"{' (' + _esc(period) + ')' if period else ''} under {what}, keeping when "
             "visitors came, what they viewed and when they asked for help.")
    chosen = list(doc.get("tenants") or [])
    names = chosen or sorted(rec.get("tenants") or {})
    word = "tenant" if len(names) == 1 else "tenants"
    who = (f"{word} {_esc(_join(names))}" if len(names) <= 6
           else f"{len(names):,} tenants")
    if chosen:
        rest = (f" (the whole history holds {whole:,})"
                if isinstance(whole, int) and whole != chats else "")
        return (f"{first} Its figures cover {who}: {_plural(chats, 'chat', 'chats')}, "
                f"{human:,} of them for an agent{rest}.")
    return (f"{first} It holds {_plural(chats, 'chat', 'chats')}"
            f"{' of ' + who if names else ''}, {human:,} of them for an agent.")


def _brief(cause: str) -> str:
    """A likely cause without its parenthesised details."""
    return re.sub(r"\s*\([^()]*\)", "", cause).strip()


def exact(null: dict[str, Any]) -> bool:
    """The recorded rules re-simulated gave back every figure exactly."""
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, int | float) and isinstance(b, int | float):
            return abs(a - b) < 1e-9
        return a is None and b is None
    return bool(null.get("rows")) and all(same(r.get("recorded"), r.get("resimulated"))
                                          for r in null["rows"])


def _trust_sentence(doc: dict[str, Any]) -> str:
    null = doc.get("null_test")
    if not null:
        return (f"How sure: these figures come from one re-simulation (seed "
                f"{_esc(doc.get('seed'))}); tune does not run the null test, so run "
                "<code>routeq compare</code> on this history to check that its own rules, "
                "re-simulated, give back what was recorded. Differences smaller than the "
                "spread over seeds are noise.")
    n = len(null.get("seeds") or [])
    if null.get("passed"):
        how = ("every one of its figures exactly" if exact(null) else
               f"its own figures within the spread over {_plural(n, 'seed', 'seeds')}")
        return (f"How sure: the null test passed. Re-run under the rules it ran under, the "
                f"history gives back {how}, so the differences above come from the rules. "
                "Differences smaller than the noise (the spread over seeds, or the "
                "figure's resolution: see the null test below) are not mentioned here.")
    sl = _sl([doc.get("recorded") or {}])
    figs = [label_of(r["path"], r["figure"], sl).lower() for r in null.get("rows", [])
            if r.get("differs")]
    if null.get("outputs_differ"):
        figs.append("the routing decisions")
    causes = null.get("causes") or []
    cause = f" Most likely cause: {_esc(_brief(causes[0]))}." if causes else ""
    return ("<b>How sure: be careful, the null test failed.</b> Re-run under the rules it "
            "ran under, the history does not give back what was recorded for "
            f"{_esc(_join(figs))}.{cause} Differences between candidates smaller than those "
            "gaps mean little.")


def plain_summary(doc: dict[str, Any]) -> str:
    """The first paragraph: what was compared, who wins on what, at what cost,
    and how sure the figures are; generated from the numbers."""
    cands = doc["candidates"]
    tune = "objective" in doc
    sl = _sl([doc.get("recorded") or {}, *(c["summary"] for c in cands)])
    n_rules = len(doc.get("tried") or []) if tune else len(cands)
    parts = [_history_sentence(doc, n_rules, tune)]
    ref = cands[0]
    ref_words = "the current rules" if tune else "the rules the history ran under"
    told = verdicts(doc)
    w = winner(doc)
    same = [c for c in cands[1:] if c.get("rules") == ref.get("rules")]
    if len(cands) < 2:
        parts.append(f"Only {ref_words} were re-simulated: there is nothing to compare.")
    elif tune:
        best = cands[w]
        objective = _objective_words(str(doc.get("objective", "")), sl)
        text = (f"The best setting found, {_name(best)} "
                f"(<code>{_esc(_setting(best.get('setting', best.get('source', ''))))}</code>; "
                f"ranked by: {_esc(objective)})")
        if best.get("feasible") is False:
            text += ", misses the limits set (no setting met them)"
        parts.append(_gains_costs(text, *_split(told[w]), "the current rules"))
    elif w == 0:
        nxt = _next_best(doc)
        copies = (f" ({_join([_name(c) for c in same])} "
                  f"{'is' if len(same) == 1 else 'are'} the same rules)" if same else "")
        if nxt is None:
            parts.append(f"Every candidate is {ref_words}{copies}: nothing differs.")
        elif not any(told[i] for i in range(1, len(cands))):
            parts.append(f"No candidate differs from {ref_words} beyond noise{copies}.")
        else:
            parts.append(f"No candidate does better overall than {ref_words}{copies}.")
            gains, costs = _split(told[nxt])
            lead = f"The closest, {_name(cands[nxt])},"
            if gains:
                lead += f" {_esc(_first(gains, 'better'))}"
                parts.append(lead + (f", but {_esc(_first(costs, 'worse'))}." if costs
                                     else "."))
            else:
                parts.append(f"{lead} {_esc(_first(costs, 'worse'))}.")
    else:
        parts.append(_gains_costs(f"{_name(cands[w])} does best", *_split(told[w]), ref_words))
    parts.append(_trust_sentence(doc))
    return " ".join(parts)


def _split(diffs: list[tuple[str, bool, str]]) -> tuple[list[str], list[str]]:
    return [t for _, ok, t in diffs if ok], [t for _, ok, t in diffs if not ok]


def _first(items: list[str], word: str, n: int = 4) -> str:
    """The first ``n`` of a list of phrases, and how many more."""
    if len(items) <= n:
        return _join(items)
    more = len(items) - n
    return (", ".join(items[:n]) + f", and is {word} on {more} more "
            f"figure{'s' if more > 1 else ''} (see the table)")


def _gains_costs(text: str, gains: list[str], costs: list[str], ref_words: str) -> str:
    if gains:
        out = f"{text}: against {ref_words}, it {_esc(_first(gains, 'better'))}."
    else:
        out = f"{text}, but does no better than {ref_words} on any figure beyond noise."
    if costs:
        out += f" The cost: it {_esc(_first(costs, 'worse'))}."
    elif gains:
        out += " It does no worse on any figure beyond noise."
    return out


def _objective_words(text: str, sl: float) -> str:
    for path in sorted(LABELS, key=len, reverse=True):
        text = text.replace(path, label_of(path, path, sl).lower())
    return text.replace("service level", f"answered within {sl:g} s")


# ---------------------------------------------------------------- the null test

#: what a history holds, in words: key of ``holds`` -> (one, many)
HOLDS: dict[str, tuple[str, str]] = {
    "declined offers": ("offer an agent declined", "offers agents declined"),
    "chats given back after being accepted": ("chat its agent declined after accepting it",
                                              "chats their agents declined after accepting them"),
    "offers timed out": ("offer nobody answered in time", "offers nobody answered in time"),
    "timer ticks after the deadline": ("clock event that fired a timer late",
                                       "clock events that fired timers late"),
    "timer ticks from the server's clock": ("timer fired by the chat server's clock",
                                            "timers fired by the chat server's clock"),
    "visitors leaving with several chats open": ("visitor who left with several chats open",
                                                 "visitors who left with several chats open"),
    "visitors leaving in the middle of a chat": ("visitor who left in the middle of a chat",
                                                 "visitors who left in the middle of a chat"),
    "chats ended while offered": ("chat that ended while offered to an agent",
                                  "chats that ended while offered to an agent"),
    "waiting chats ended by an agent": ("waiting chat an agent closed",
                                        "waiting chats agents closed"),
    "chats open at the end": ("chat still open when the history ends",
                              "chats still open when the history ends"),
    "chats requeued by an agent going away or offline": (
        "chat put back in the queue when its agent went away or offline",
        "chats put back in the queue when their agent went away or offline"),
    "malformed lines (left out)": ("malformed line, left out", "malformed lines, left out"),
    "rules deployments": ("change of rules during the history",
                          "changes of rules during the history"),
}


def holds_text(holds: dict[str, Any]) -> str:
    items = []
    for key, n in holds.items():
        if not isinstance(n, int) or n <= 0:
            continue
        one, many = HOLDS.get(key, (key, key))
        items.append(_plural(n, one, many))
    if not items:
        return ("The history holds none of what chat servers do beyond the plain simulation "
                "(declined or unanswered offers, agents closing waiting chats, visitors "
                "leaving mid-chat, chats open at the end): nothing special to reproduce.")
    return (f"The history holds {_join(items)}; the re-simulation reproduces each as it "
            "happened.")


def null_section(doc: dict[str, Any]) -> str:
    null = doc.get("null_test")
    if not null:
        return ""
    sl = _sl([doc.get("recorded") or {}])
    seeds = null.get("seeds") or []
    body = []
    for r in null.get("rows", []):
        kind = kind_of(r["path"])
        verdict = "differs" if r.get("differs") else "OK"
        body.append(
            f'<tr class="{"differs" if r.get("differs") else "ok"}">'
            f"<th>{_esc(label_of(r['path'], r['figure'], sl))}</th>"
            f"<td>{_esc(fmt_value(r.get('recorded'), kind))}</td>"
            f"<td>{_esc(fmt_value(r.get('resimulated'), kind))}</td>"
            f"<td>{_esc(fmt_noise(r.get('tolerance'), kind))}</td>"
            f'<td class="verdict">{verdict}</td></tr>')
    if null.get("outputs_checked") is not None:
        bad = int(null.get("outputs_differ") or 0)
        checked = int(null["outputs_checked"])
        body.append(
            f'<tr class="{"differs" if bad else "ok"}"><th>Routing decisions, events '
            f"checked</th><td>{checked:,}</td><td>{checked - bad:,} decided alike</td>"
            f"<td>{DASH}</td>"
            f'<td class="verdict">{"differs" if bad else "OK"}</td></tr>')
    verdict = ("passed" if null.get("passed") else "failed")
    if len(seeds) == 1 and exact(null):
        runs = (f"(seed {_esc(seeds[0])}): it gave back every figure exactly, and on the "
                "recorded path no random draw comes into play, so any other seed would too")
    else:
        runs = (f"with {_plural(len(seeds), 'seed', 'seeds')} "
                f"({_esc(', '.join(map(str, seeds)))})")
    head = (f"<p>The history was re-run under the rules it ran under {runs}. A faithful "
            "re-simulation gives back the recorded figures; a figure differs when the gap is "
            "larger than the noise (three times the spread over seeds, and at least one "
            "chat, half a second, half a point of occupancy or 1 % of revenue). The null "
            f'test <b class="{verdict}">{verdict}</b>.</p>')
    causes = ""
    if not null.get("passed"):
        causes = ("<p>Likely causes, most likely first:</p><ul class=\"causes\">"
                  + "".join(f"<li>{_esc(c)}</li>" for c in null.get("causes") or [])
                  + "</ul><p>Differences between candidates smaller than these gaps mean "
                  "little.</p>")
    return f"""<h2 id="null-test">How sure are these figures? The null test</h2>
{head}
<table class="cmp null"><thead><tr><th>Figure</th><th>Recorded</th>
<th>Re-simulated under the recorded rules</th><th>Noise</th><th>Verdict</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<p>{_esc(holds_text(null.get("holds") or {}))}</p>
{causes}"""


# ---------------------------------------------------------------- tables

def html_table(names: list[str], summaries: list[dict[str, Any]], marked: int,
               notes: dict[int, str] | None = None) -> str:
    sl = _sl(summaries)
    notes = notes or {}
    head = "".join(f"<th>{_esc(n)}"
                   + (f'<br><small>{_esc(notes[i])}</small>' if i in notes else "") + "</th>"
                   for i, n in enumerate(names))
    rows = []
    for label, path, fmt, better in ROWS:
        values = [value(s, path) for s in summaries]
        best = {i + marked for i in best_of(values[marked:], better)}
        kind = kind_of(path, fmt)
        cells = "".join(f'<td class="{"best" if i in best else ""}">'
                        f"{_esc(fmt_value(v, kind))}</td>" for i, v in enumerate(values))
        rows.append(f'<tr><th title="{_esc(label)}">{_esc(label_of(path, label, sl))}</th>'
                    f"{cells}</tr>")
    return (f'<table class="cmp"><thead><tr><th></th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def tenant_tables(doc: dict[str, Any], names: list[str],
                  summaries: list[dict[str, Any]], notes: dict[int, str]) -> str:
    tenants = list(doc.get("tenants") or [])
    if len(tenants) < 2:
        return ""
    out = ['<h2 id="tenants">Tenant by tenant</h2>']
    for t in tenants:
        parts = [(s.get("by_tenant") or {}).get(t) for s in summaries]
        out.append(f'<h3 class="tenant">{_esc(t)}</h3>')
        if any(p is None for p in parts):
            out.append(f'<p class="meta">No figures for tenant {_esc(t)} in this report.</p>')
            continue
        known = [p for p in parts if p is not None]
        if not any(value(p, "overall.human") for p in known):
            out.append(f'<p class="meta">No chats for an agent in tenant {_esc(t)} (a chat '
                       "overflowed to another tenant counts for the one it came from).</p>")
            continue
        out.append(html_table(names, known, 1, notes))
    return "\n".join(out)


# ---------------------------------------------------------------- plots

PAGE_ORDER = ("home", "list", "search", "detail", "cart", "checkout", "order", "after_sales")
NO_PAGE = "(none)"


def page_groups(summaries: list[dict[str, Any]]) -> list[str]:
    """The pages of the chart: those with an answered chat in some summary, the
    unknown page left out."""
    pages: list[str] = []
    for s in summaries:
        for p, row in (value(s, "whatif.pages") or {}).items():
            if p == NO_PAGE or p in pages:
                continue
            if row.get("human") and row.get("wait_mean_s") is not None:
                pages.append(p)
    pages.sort(key=lambda p: (PAGE_ORDER.index(p) if p in PAGE_ORDER else len(PAGE_ORDER), p))
    return pages


def plots(names: list[str], summaries: list[dict[str, Any]]) -> list[str]:
    colors = [COLORS[i % len(COLORS)] for i in range(len(names))]
    sl = _sl(summaries)
    out = []
    # wait distribution (empirical CDF from 101 quantiles)
    series: list[Series] = []
    cap = 0.0
    for s in summaries:
        q = value(s, "whatif.wait_quantiles_s") or []
        if q:
            cap = max(cap, q[99])
    cap = cap or 1.0
    for n, c, s in zip(names, colors, summaries, strict=True):
        q = value(s, "whatif.wait_quantiles_s") or []
        pts = [(min(x, cap), k / 100) for k, x in enumerate(q) if x <= cap]
        series.append((n, c, pts))
    out.append(line_chart("Wait for an agent: share of chats answered within x seconds",
                          series, "wait in seconds (up to the longest wait of 99 in 100 chats)",
                          "share answered", yfmt=lambda y: f"{y:.0%}", ymax=1.0))
    # queue and service level over the day
    first = value(summaries[0], "whatif.series") or {}
    t0, bin_ms = int(first.get("t0", 0)), int(first.get("bin_ms", 60_000))
    hours = bin_ms / 3_600_000
    xfmt = _clock(t0, bin_ms)
    q_series: list[Series] = []
    sl_series: list[Series] = []
    for n, c, s in zip(names, colors, summaries, strict=True):
        ser = value(s, "whatif.series") or {}
        q_series.append((n, c, [(k * hours, float(v)) for k, v in
                                enumerate(ser.get("queue", []))]))
        sl_series.append((n, c, [(k * hours, float(v)) for k, v in
                                 enumerate(ser.get("service_level", [])) if v is not None]))
    out.append(line_chart("Chats waiting for an agent over the day (time average)", q_series,
                          "time of day (UTC)", "chats waiting", xfmt=xfmt, step=True))
    out.append(line_chart(f"Answered within {sl:g} s, over the day", sl_series,
                          "time of day (UTC), by when the chat started waiting",
                          f"answered within {sl:g} s", xfmt=xfmt, yfmt=lambda y: f"{y:.0%}",
                          ymax=1.0))
    # wait by page: pages with answered chats; the unknown page in a note
    pages = page_groups(summaries)
    chart = bar_chart("Average wait by page", pages,
                      [(n, c, [value(s, f"whatif.pages.{p}.wait_mean_s") for p in pages])
                       for n, c, s in zip(names, colors, summaries, strict=True)],
                      "average wait (s)", unit=" s")
    unknown = ((value(summaries[0], "whatif.pages") or {}).get(NO_PAGE) or {}).get("human")
    if unknown:
        chart += (f'<p class="note" id="no-page">{_plural(int(unknown), "chat", "chats")} '
                  "for an agent came from visitors whose page is unknown (no page view "
                  "before the chat): left out of this chart, counted in every other "
                  "figure.</p>")
    unanswered = sorted({p for s in summaries for p in value(s, "whatif.pages") or {}}
                        - set(pages) - {NO_PAGE})
    if unanswered:
        chart += ('<p class="note" id="unanswered-pages">Pages where no chat was answered '
                  f"under any of the rules, left out of this chart: {_esc(_join(unanswered))}."
                  "</p>")
    out.append(chart)
    # agent load
    load: list[Series] = []
    for n, c, s in zip(names, colors, summaries, strict=True):
        occ = sorted(value(s, "whatif.agent_occupancy") or [], reverse=True)
        load.append((n, c, [(k + 1, x) for k, x in enumerate(occ)]))
    out.append(line_chart("Agent load: each agent's time busy with chats, busiest first", load,
                          "agents, busiest first", "time busy with chats",
                          yfmt=lambda y: f"{y:.0%}", ymax=1.0))
    return out


# ---------------------------------------------------------------- the method

def _noise_definition() -> str:
    """The noise as simulators/null_test.py's docstring defines it."""
    doc = null_test.__doc__ or ""
    if "**Noise.**" not in doc:
        return (f"a figure differs when the mean re-simulated value is further from the "
                f"recorded one than {null_test.SIGMAS:g} standard deviations over the seeds "
                "and than the figure's resolution.")
    para = doc.split("**Noise.**", 1)[1].strip().split("\n\n", 1)[0]
    para = para.replace("``seeds`` seeds", "several seeds (compare's --null-seeds)")
    para = re.sub(r"\s*\(:\w+:`[^`]*`\)", "", para)  # a reference to the code
    para = re.sub(r":\w+:`([^`]*)`", r"\1", para)
    return " ".join(para.replace("``", "").split())


def _orders_text(model: dict[str, Any]) -> str:
    order_p = {(p or NO_PAGE): v for p, v in (model.get("order_p") or {}).items()}
    if not any(order_p.values()):
        return "No order followed a chat an agent served in this history."
    pages = sorted(order_p, key=lambda p: (-order_p[p], p))
    by_page = ", ".join(f"{_esc(p if p != NO_PAGE else 'unknown page')} "
                        f"{100 * order_p[p]:.0f}%" for p in pages)
    tau = model.get("order_tau_s")
    if tau is None:
        waiting = "in this history the wait did not change that chance."
    else:
        waiting = (f"waiting lowers it: after a {tau:g} s wait it is about a third (1/e) of "
                   f"that, after {0.693 * tau:.0f} s a half.")
    return (f"Chance of an order within an hour of a chat an agent served, by the page "
            f"the visitor asked from, with no wait: {by_page}; {waiting}")


def _secs(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:,.1f} s"


def method_section(doc: dict[str, Any]) -> str:
    model = doc.get("model") or {}
    items = []
    deps = doc.get("deployments") or []
    dep = ""
    if deps:
        dep = ("; then rules "
               + ", ".join(f"<code>{_esc(d.get('rules'))}</code> (after "
                           f"{d.get('exogenous_before', 0):,} events)" for d in deps))
    items.append(
        f"History: <code>{_esc(doc['trace'])}</code>, {doc.get('events', 0):,} events"
        + (f" ({doc['exogenous']:,} kept as they happened: arrivals, page views, chat "
           "requests, agents' shifts)" if isinstance(doc.get("exogenous"), int) else "")
        + f"; recorded under rules <code>{_esc(doc['trace_rules_hash'])}</code> "
        f"({_esc(doc.get('trace_rules', ''))}){dep}.")
    if model:
        chats, served, gave_up = (model.get("chats"), model.get("served"),
                                  model.get("gave_up"))
        patience = model.get("patience_mean_s")
        handle = model.get("handle_mean_s")
        items.append(
            f"Fitted from the history: {chats or 0:,} chats, {served or 0:,} served by an "
            f"agent, {gave_up or 0:,} gave up waiting. "
            + (f"Visitors wait {patience:g} s on average before giving up (one exponential "
               "model; the patience of those answered is only known to be longer than their "
               "wait). " if patience is not None else "Nobody gave up waiting. ")
            + (f"An agent handles a chat in {handle:g} s on average (each chat keeps its "
               "own handle time; a chat nobody handled draws one from the same page)."
               if handle is not None else "No chat was handled by an agent."))
        items.append(_orders_text(model))
        items.append(
            "Offers had to be accepted (the history holds chat.accepted): each offer's "
            "answer, accepted after a delay, declined or left to time out, is replayed on "
            "the chat's offers in order." if model.get("acceptance") else
            "Offers did not have to be accepted: a chat went to its agent as soon as it was "
            "assigned.")
    null = doc.get("null_test") or {}
    seeds = null.get("seeds") or []
    items.append(
        f"Random draws: seed <code>{_esc(doc['seed'])}</code> for every candidate"
        + (f"; the recorded rules also under seed{'s' if len(seeds) > 1 else ''} "
           f"{_esc(', '.join(map(str, seeds)))} for the null test" if seeds else "")
        + ". Each chat draws its patience, handle time and order luck from numbers seeded "
        "by (seed, tenant, chat): every candidate sees the same luck for the same chat.")
    cands = "".join(
        f"<li><b>{_esc(c['name'])}</b>: policy <code>{_esc(c.get('policy'))}</code>, rules "
        f"<code>{_esc(c.get('rules'))}</code> ({_esc(c.get('source', ''))})"
        + ("" if c.get("feasible") is not False else "; misses a limit of the objective")
        + "</li>" for c in doc["candidates"])
    items.append(f"Rules compared:<ul>{cands}</ul>")
    if "objective" in doc:
        tried = doc.get("tried") or []
        items.append(
            f"Search: {_esc(doc.get('method'))} over <code>{_esc(doc.get('space'))}</code>, "
            f"{_plural(len(tried), 'setting', 'settings')} tried; objective: "
            f"{_esc(doc['objective'])}; best rules written to "
            f"<code>{_esc(doc.get('best_rules_file', ''))}</code>.")
    items.append(f"Noise (the null test): {_esc(_noise_definition())} The summary at the top "
                 "mentions a difference only when it is larger than that noise where the null "
                 "test measured it, and than that resolution (half a point for a share of "
                 "unknown denominator or for the spread of agents' load) for every figure.")
    if "objective" not in doc:
        items.append(
            "Which rules the summary calls best: against the recorded rules re-simulated, the "
            "candidate better beyond noise on more of the main figures (answered within "
            f"{_sl([doc.get('recorded') or {}]):g} s, gave up waiting, revenue after chat) "
            "than it is worse, or on as many and then on more of the others (checkout "
            "waits, average wait, cart and checkout visitors, visitors from other pages and "
            "valuable customers giving up, uneven load, back with the same agent); where "
            "none is, the recorded rules stay best and the summary "
            "describes the closest candidate. The period is read from the figures over the "
            "day, to a slice of it.")
    times = []
    if isinstance(doc.get("read_s"), int | float):
        times.append(f"reading the history took {_secs(doc['read_s'])}")
    if isinstance(doc.get("run_s"), int | float):
        runs = (len(doc.get("tried") or []) + 1 if "objective" in doc
                else len(doc["candidates"]) - 1 + max(1, len(seeds)))
        times.append(f"the {runs:,} re-simulations took {_secs(doc['run_s'])}")
    if times:
        items.append(f"Time: {'; '.join(times)}.")
    items.append(
        "Figures as CONTRACT.md section 8 defines them: a wait runs from entering the queue "
        "for an agent to the first answer; gave up waiting = left before any answer, over "
        "the chats for an agent; valuable customers: members of tier "
        f"{HIGH_VALUE_TIER} or above, or a lifetime value of {HIGH_VALUE_LTV:,.0f} or more; "
        "uneven load: the standard deviation of the agents' busy time; orders and revenue "
        "after chat: orders placed within an hour of a chat that was not given up.")
    body = "".join(f"<li>{x}</li>" for x in items)
    return f'<h2 id="method">Method (for the analyst)</h2>\n<ul class="method">{body}</ul>'


# ---------------------------------------------------------------- the page

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px;
color:#222;max-width:1340px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
h3{font-size:15px;margin:18px 0 6px}
p.summary{font-size:15px;line-height:1.55;max-width:980px;background:#f6f8fa;
border-left:4px solid #1f77b4;padding:10px 14px}
.meta,.note,ul.method{color:#555;font-size:13px;line-height:1.5}
ul.method{max-width:1100px}
.grid{display:flex;flex-wrap:wrap;gap:16px}
.fig{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff;
flex:1 1 560px;max-width:660px}
.fig svg{width:100%;height:auto;display:block}
.legend{font-size:12px;margin:2px 0 0 56px}
.key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
table.cmp{border-collapse:collapse;font-size:13px}
table.cmp td,table.cmp th{border-bottom:1px solid #e5e5e5;padding:4px 10px;text-align:right}
table.cmp th:first-child{text-align:left}
table.cmp thead th{vertical-align:bottom}
table.cmp small{font-weight:normal;color:#777}
table.cmp td.best{font-weight:bold;background:#e8f5e9}
table.cmp td:nth-child(2){color:#666}
table.null td:nth-child(2){color:#222}
table.null tr.differs td.verdict,b.failed{color:#b00}
table.null tr.ok td.verdict,b.passed{color:#2a7d2e}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
"""


def render(doc: dict[str, Any], names: list[str], title: str = "routeq compare") -> str:
    summaries = [doc["recorded"], *(c["summary"] for c in doc["candidates"])]
    tune = "objective" in doc
    figures = plots(names, summaries)
    if "front" in doc:
        f = doc["front"]
        figures.insert(0, scatter_chart(
            "Revenue after chat against abandonment, every candidate tried", f["points"],
            f["front"], f["current"], "gave up waiting, % of chats for an agent",
            "revenue within an hour of a chat", xfmt=lambda x: f"{100 * x:.1f}",
            yfmt=_compact))
    figs = "".join(f'<div class="fig">{p}</div>' for p in figures)
    notes = {0: "as recorded", 1: "re-simulated"}  # (the history read under its rules)
    ref = "current rules" if tune else "recorded rules"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_esc(title)}: {_esc(doc['trace'])}</title>
<style>{CSS}</style></head>
<body>
<h1>{_esc(title)}: what if this history had been routed otherwise?</h1>
<p class="summary" id="summary">{plain_summary(doc)}</p>
{null_section(doc)}
<h2 id="side-by-side">Side by side</h2>
{html_table(names, summaries, 1, notes)}
<p class="note">Bold: the best of the rules compared on that line. The first column is what
happened (not ranked); the second is the {ref} re-simulated: compare the others with it.
A wait runs from entering the queue for an agent to the first answer. Valuable customers:
members of tier {HIGH_VALUE_TIER} or above, or a lifetime value of {HIGH_VALUE_LTV:,.0f} or
more. Revenue within an hour of a chat counts orders after a chat that was not given
up.</p>
{tenant_tables(doc, names, summaries, notes)}
<h2 id="plots">Plots</h2>
<div class="grid">{figs}</div>
{method_section(doc)}
</body></html>
"""


def write_report(path: str, doc: dict[str, Any], names: list[str], table: str,
                 title: str = "routeq compare") -> None:
    Path(path).write_text(render(doc, names, title), encoding="utf-8")
