"""Candidates for a what-if comparison, and running them in parallel processes.

A candidate is a name and parsed rules: a rules file (``--rules A.toml``), or
the trace's own rules with another policy (``--policy least_loaded``). The
trace is read once in the parent; worker processes are forked from it, so they
share it without copying it through a pipe, and each re-simulates one
candidate at a time. Every chat's random draws are seeded by (seed, tenant,
chat), so the numbers do not depend on the number of processes or their order.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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
    if not out and not policies:  # the baselines beside routeq's own policy
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


#: one re-simulation: rules, seed, and whether the trace's own deployments apply
#: (the recorded rules candidate)
Run = tuple[Rules, int, bool]


def runs_of(rules: list[Rules], seed: int) -> list[Run]:
    return [(r, seed, False) for r in rules]


_TRACE: Trace | None = None  # set in the parent before forking the workers
_DONE: Any = None  # a shared counter of exogenous events re-simulated (progress bar)


def _tick(n: int) -> None:
    with _DONE.get_lock():
        _DONE.value += n


def _work(index: int, run: Run) -> tuple[int, dict[str, Any]]:
    assert _TRACE is not None
    rules, seed, recorded = run
    return index, run_candidate(_TRACE, rules, seed, _tick if _DONE is not None else None,
                                recorded)


def run_all(trace: Trace, runs: list[Run], jobs: int | None = None,
            progress: bool = False, desc: str = "candidates") -> list[dict[str, Any]]:
    """Re-simulate every run on the trace; summaries in the order given. Runs
    that are the same (rules, seed, recorded) are simulated once.

    With ``progress``, a tqdm bar on stderr counts the trace's exogenous events
    re-simulated over all candidates.
    """
    global _TRACE, _DONE

    def key(run: Run) -> tuple[str, int, bool]:  # the recorded rules without deployments
        return run[0].hash, run[1], run[2] and bool(trace.deployments)  # are just rules

    first: dict[tuple[str, int, bool], Run] = {}
    for run in runs:
        first.setdefault(key(run), run)
    todo = list(first.values())
    n = len(todo)
    workers = max(1, min(jobs or os.cpu_count() or 1, n))
    results: list[dict[str, Any] | None] = [None] * n
    bar = None
    if progress:
        from tqdm import tqdm  # type: ignore[import-untyped]
        bar = tqdm(total=n * trace.exo_events, unit="ev", unit_scale=True, desc=desc,
                   dynamic_ncols=True, leave=False)
    ctx = multiprocessing.get_context("fork")
    try:
        if workers == 1:
            step = bar.update if bar is not None else None
            for i, (r, s, rec) in enumerate(todo):
                results[i] = run_candidate(trace, r, s, step, rec)
        else:
            _TRACE = trace
            _DONE = ctx.Value("q", 0) if bar is not None else None
            # the forked workers share the trace's pages until written: kept out
            # of the cyclic collector's passes, which would copy every one
            gc.freeze()
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                pending = {pool.submit(_work, i, run) for i, run in enumerate(todo)}
                while pending:
                    finished, pending = wait(pending, timeout=0.5,
                                             return_when=FIRST_COMPLETED)
                    for fut in finished:
                        i, summary = fut.result()
                        results[i] = summary
                    if bar is not None:
                        bar.update(_DONE.value - bar.n)
                        bar.set_postfix(done=f"{sum(r is not None for r in results)}/{n}",
                                        refresh=False)
    finally:
        gc.unfreeze()
        _TRACE = None
        _DONE = None
        if bar is not None:
            bar.close()
    index = {k: i for i, k in enumerate(first)}
    return [results[index[key(run)]] for run in runs]  # type: ignore[misc]
