"""Candidates for a what-if comparison, and running them in parallel processes.

A candidate is a name and parsed rules: a rules file (``--rules A.toml``), or
the trace's own rules with another policy (``--policy least_loaded``). The
trace is read once in the parent; worker processes are forked from it, so they
share it without copying it through a pipe, and each re-simulates one
candidate at a time. Every chat's random draws are seeded by (seed, tenant,
chat), so the numbers do not depend on the number of processes or their order.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import POLICIES, Rules, RulesError, parse_rules, rules_from_toml
from simulators.whatif import Trace, TraceError, run_candidate, trace_files

BASELINES = ("fifo_round_robin", "least_loaded", "longest_idle")


@dataclass
class Candidate:
    name: str
    rules: Rules
    source: str  # where it came from: a rules file, "policy P", "trace rules"


def read_rules(path: str) -> tuple[Rules, str]:
    """Parsed rules and their text; :class:`RulesError` naming the file and the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise RulesError(f"rules file is not a UTF-8 text file: {path}") from None
    try:
        return rules_from_toml(text), text
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from None


def trace_rules(trace: str, path: str | None) -> tuple[Rules, str]:
    """The rules a trace was recorded with: ``--trace-rules``, else the trace
    directory's ``rules.toml``, else the defaults."""
    if path is None:
        _, found = trace_files(trace)
        if found is not None:
            path = str(found)
    if path is None:
        return parse_rules({}), "default rules"
    return read_rules(path)[0], path


def with_policy(rules: Rules, policy: str) -> Rules:
    data = dict(rules.data)
    data["policy"] = policy
    return parse_rules(data)


def build(base: Rules, rules_files: list[str], policies: list[str],
          baselines: bool) -> list[Candidate]:
    """The candidates in the order given; names are unique (a suffix where needed)."""
    out: list[Candidate] = []
    for path in rules_files:
        out.append(Candidate(Path(path).stem, read_rules(path)[0], path))
    wanted = list(policies)
    if baselines:
        wanted += [b for b in BASELINES if b not in wanted]
    if not out and not wanted:
        wanted = ["priority", *BASELINES]
    for policy in wanted:
        if policy not in POLICIES:
            raise TraceError(f"unknown policy {policy!r} (one of {', '.join(POLICIES)})")
        out.append(Candidate(policy, with_policy(base, policy), f"trace rules, policy {policy}"))
    seen: dict[str, int] = {}
    for c in out:
        n = seen.get(c.name, 0)
        seen[c.name] = n + 1
        if n:
            c.name = f"{c.name}#{n + 1}"
    return out


_TRACE: Trace | None = None  # set in the parent before forking the workers


def _work(index: int, rules: Rules, seed: int) -> tuple[int, dict[str, Any], float]:
    assert _TRACE is not None
    started = time.perf_counter()
    summary = run_candidate(_TRACE, rules, seed)
    return index, summary, time.perf_counter() - started


def run_all(trace: Trace, rules: list[Rules], seed: int, jobs: int | None = None,
            progress: bool = False, desc: str = "candidates",
            done: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Re-simulate every rules set on the trace; summaries in the order given."""
    global _TRACE
    n = len(rules)
    workers = max(1, min(jobs or os.cpu_count() or 1, n))
    results: list[dict[str, Any] | None] = [None] * n
    bar = None
    if progress:
        from tqdm import tqdm  # type: ignore[import-untyped]
        bar = tqdm(total=n, unit="cand", desc=desc, dynamic_ncols=True, leave=False)
    try:
        if workers == 1:
            for i, r in enumerate(rules):
                results[i] = run_candidate(trace, r, seed)
                if done is not None:
                    done(i, results[i])  # type: ignore[arg-type]
                if bar is not None:
                    bar.update(1)
        else:
            _TRACE = trace
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_work, i, r, seed) for i, r in enumerate(rules)]
                for fut in as_completed(futures):
                    i, summary, _ = fut.result()
                    results[i] = summary
                    if done is not None:
                        done(i, summary)
                    if bar is not None:
                        bar.update(1)
    finally:
        _TRACE = None
        if bar is not None:
            bar.close()
    return [r for r in results if r is not None]
