"""The what-if report: one self-contained HTML file (inline SVG drawn here, no
scripts, no fonts or styles from the network), so it opens offline anywhere.

Plots: the distribution of waits per candidate, the queue and the service
level over the day, the mean wait by page type, and the load of each agent;
then the comparison table, and what was compared: the trace, the rules hashes,
the seed and the fitted models.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from pathlib import Path
from typing import Any

from simulators.whatif_metrics import ROWS, best_of, cell, value

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
              ylabel: str) -> str:
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
                         f'fill="{color}"><title>{_esc(sname)} {_esc(name)}: {v:.1f}</title>'
                         '</rect>')
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


def _clock(t0: int, bin_ms: int) -> Any:
    def f(h: float) -> str:
        moment = dt.datetime.fromtimestamp((t0 + h * 3_600_000) / 1000, tz=dt.UTC)
        return moment.strftime("%H:%M")
    return f


def plots(names: list[str], summaries: list[dict[str, Any]]) -> list[str]:
    colors = [COLORS[i % len(COLORS)] for i in range(len(names))]
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
    out.append(line_chart("Wait for an agent: share of chats answered within x",
                          series, "wait (s), up to the largest p99", "share answered",
                          yfmt=lambda y: f"{y:.0%}", ymax=1.0))
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
    out.append(line_chart("Service level over the day (answered within 20 s)", sl_series,
                          "time of day (UTC), by when the chat entered the queue",
                          "service level", xfmt=xfmt, yfmt=lambda y: f"{y:.0%}", ymax=1.0))
    # wait by page
    pages: list[str] = []
    for s in summaries:
        for p in value(s, "whatif.pages") or {}:
            if p not in pages:
                pages.append(p)
    order = ["home", "list", "search", "detail", "cart", "checkout", "order", "after_sales"]
    pages.sort(key=lambda p: (order.index(p) if p in order else len(order), p))
    out.append(bar_chart("Mean wait by page type", pages,
                         [(n, c, [value(s, f"whatif.pages.{p}.wait_mean_s") for p in pages])
                          for n, c, s in zip(names, colors, summaries, strict=True)],
                         "mean wait (s)"))
    # agent load
    load: list[Series] = []
    for n, c, s in zip(names, colors, summaries, strict=True):
        occ = sorted(value(s, "whatif.agent_occupancy") or [], reverse=True)
        load.append((n, c, [(k + 1, x) for k, x in enumerate(occ)]))
    out.append(line_chart("Agent load: each agent's occupancy, busiest first", load,
                          "agents, busiest first", "occupancy (chat-time / capacity-time)",
                          yfmt=lambda y: f"{y:.0%}", ymax=1.0))
    return out


def html_table(names: list[str], summaries: list[dict[str, Any]], marked: int) -> str:
    head = "".join(f"<th>{_esc(n)}</th>" for n in names)
    rows = []
    for label, path, fmt, better in ROWS:
        values = [value(s, path) for s in summaries]
        best = {i + marked for i in best_of(values[marked:], better)}
        cells = "".join(f'<td class="{"best" if i in best else ""}">{_esc(cell(v, fmt))}</td>'
                        for i, v in enumerate(values))
        rows.append(f"<tr><th>{_esc(label)}</th>{cells}</tr>")
    return (f'<table class="cmp"><thead><tr><th></th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px;
color:#222;max-width:1340px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;font-size:13px;line-height:1.5}
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
table.cmp td.best{font-weight:bold;background:#e8f5e9}
table.cmp td:nth-child(2){color:#666}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
"""


def render(doc: dict[str, Any], names: list[str], title: str = "routeq compare") -> str:
    summaries = [doc["recorded"], *(c["summary"] for c in doc["candidates"])]
    figures = plots(names, summaries)
    if "front" in doc:
        f = doc["front"]
        figures.insert(0, scatter_chart(
            "Revenue after chat against abandonment, every candidate tried", f["points"],
            f["front"], f["current"], "abandonment, % of chats for a human",
            "revenue after chat", xfmt=lambda x: f"{100 * x:.1f}"))
    figs = "".join(f'<div class="fig">{p}</div>' for p in figures)
    cands = "".join(
        f"<li><b>{_esc(c['name'])}</b>: policy <code>{_esc(c['policy'])}</code>, rules "
        f"<code>{_esc(c['rules'])}</code> ({_esc(c.get('source', ''))})</li>"
        for c in doc["candidates"])
    model = doc.get("model", {})
    model_text = "; ".join(
        f"{_esc(k.replace('_', ' '))} "
        + (", ".join(f"{_esc(p)} {_esc(x)}" for p, x in v.items()) if isinstance(v, dict)
           else _esc(v))
        for k, v in model.items())
    extra = ""
    if "objective" in doc:
        extra = (f"<div>objective: {_esc(doc['objective'])}; search space "
                 f"<code>{_esc(doc.get('space'))}</code> ({_esc(doc.get('method'))})</div>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_esc(title)}: {_esc(doc['trace'])}</title>
<style>{CSS}</style></head>
<body>
<h1>{_esc(title)}: what if this history had been routed otherwise?</h1>
<div class="meta">
<div>trace <code>{_esc(doc['trace'])}</code> ({doc.get('events', 0):,} events), recorded under
rules <code>{_esc(doc['trace_rules_hash'])}</code> ({_esc(doc.get('trace_rules', ''))});
seed <code>{_esc(doc['seed'])}</code></div>{extra}
<ul>{cands}</ul>
<div>fitted from the trace: {model_text}</div>
</div>
<h2>Side by side</h2>
{html_table(names, summaries, 1)}
<p class="meta">Bold: the best candidate of the row. The first column is the trace as
recorded (not ranked). Waits run from entering the human queue to the first assignment;
revenue after chat counts orders within an hour of a chat that was not abandoned.</p>
<h2>Plots</h2>
<div class="grid">{figs}</div>
</body></html>
"""


def write_report(path: str, doc: dict[str, Any], names: list[str], table: str,
                 title: str = "routeq compare") -> None:
    Path(path).write_text(render(doc, names, title), encoding="utf-8")
