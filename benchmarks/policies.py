"""The cost of being smarter: the same decision workload under each routing policy.

Run::

    .venv/bin/python -m benchmarks.policies [--quick] [--out FILE.json]

The tenant of ``benchmarks/engine_apply.py`` (default 200 agents x 2,000
waiting chats, mixed traffic, about 90 % page views) is built once per
policy: ``priority`` (ours: page weight, loyalty, sticky, skill match, load)
and the field's baselines ``fifo_round_robin``, ``least_loaded`` and
``longest_idle``. Each policy gets its own stream from the same seed and
generator (which chats an agent frees depends on who took them, so the
streams cannot be byte-equal; their mix of event kinds is the same by
construction and is reported). After a warm-up of each, repetitions run the
four policies interleaved, each on a fresh engine; reported: events/s (median,
min, max) of wall time and of CPU time, the ratio of every policy to
``priority`` per repetition in CPU time (its median: a busy machine shifts
all alike), and placing-decision latency p50/p99.
"""

from __future__ import annotations

import gc
import sys
import time

from benchmarks.common import Record, parser, progress, summary
from benchmarks.engine_apply import Stream, build_stream, fresh_engine, run_latency
from engine import Rules, parse_rules
from engine.rules import POLICIES


def run_engine(rules: Rules, s: Stream) -> tuple[float, float]:
    """(events/s of wall time, events/s of this process's CPU time) on a fresh engine.

    CPU time is what the ratios use: on a shared machine other processes take
    wall time from a run, much less its CPU time.
    """
    eng = fresh_engine(rules, s)
    apply = eng.apply
    base = len(s.setup)
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    for off, ev in enumerate(s.measured, base):
        apply(ev, off)
    t1, c1 = time.perf_counter(), time.process_time()
    return len(s.measured) / (t1 - t0), len(s.measured) / max(c1 - c0, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = parser("policies", __doc__, quick="fewer events and repetitions", seed=20260101)
    ap.add_argument("--agents", type=int, default=200, help="agents online (default 200)")
    ap.add_argument("--waiting", type=int, default=2000,
                    help="chats kept waiting (default 2,000)")
    ap.add_argument("--events", type=int, help="measured events (default 200,000; quick 30,000)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick 3)")
    args = ap.parse_args(argv)
    events = args.events or (30_000 if args.quick else 200_000)
    reps = args.reps or (3 if args.quick else 5)
    record = Record("policies")
    rules = {p: parse_rules({"policy": p}) for p in POLICIES}
    streams: dict[str, Stream] = {}
    for p in POLICIES:
        t0 = time.perf_counter()
        streams[p] = build_stream(rules[p], args.agents, args.waiting, events, args.seed)
        progress(f"{p}: built {len(streams[p].measured):,} events, {streams[p].decisions:,} "
            f"decisions in {time.perf_counter() - t0:.1f}s")
    eps: dict[str, list[float]] = {p: [] for p in POLICIES}
    cpu_eps: dict[str, list[float]] = {p: [] for p in POLICIES}
    gc.collect()
    gc.freeze()
    try:
        for p in POLICIES:  # warm-up
            run_engine(rules[p], streams[p])
        for i in range(reps):
            for p in POLICIES:
                wall, cpu = run_engine(rules[p], streams[p])
                eps[p].append(wall)
                cpu_eps[p].append(cpu)
            progress(f"rep {i + 1}/{reps}: " + ", ".join(f"{p} {cpu_eps[p][-1]:,.0f}"
                                                         for p in POLICIES) + " (CPU events/s)")
        latency = {p: run_latency(rules[p], streams[p]) for p in POLICIES}
    finally:
        gc.unfreeze()
    results = {}
    for p in POLICIES:
        ratios = [a / b for a, b in zip(cpu_eps[p], cpu_eps["priority"], strict=True)]
        s = streams[p]
        results[p] = {
            "events_per_s": summary(eps[p]),
            "events_per_cpu_s": summary(cpu_eps[p]),
            "over_priority": summary(ratios, 3),
            "decisions": s.decisions,
            "mix": dict(sorted(s.mix.items())),
            "placing_p50_us": latency[p]["p50_us"],
            "placing_p99_us": latency[p]["p99_us"],
            "all_p99_us": latency[p]["all_p99_us"],
        }
    doc = record.document(args.quick, agents=args.agents, waiting_target=args.waiting,
                          events=events, reps=reps, seed=args.seed, policies=results)
    head = (f"{'policy':18} {'events/s':>10} {'ev/CPU s':>10} {'/priority':>10} {'p50 us':>8} "
            f"{'p99 us':>8}")
    return record.finish(args.out, doc, [head, *(
        f"{p:18} {r['events_per_s']['median']:>10,} {r['events_per_cpu_s']['median']:>10,} "
        f"{r['over_priority']['median']:>10.3f} {r['placing_p50_us']:>8} {r['placing_p99_us']:>8}"
        for p, r in results.items())])


if __name__ == "__main__":
    sys.exit(main())
