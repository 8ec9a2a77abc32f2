"""A recorded history as ``compare``, ``tune`` and ``fit`` take it: the
options, where the history comes from, and the reading (apart from
common.py, so that run, replay and export do not load the what-if simulator).

A history is one of:

- a ``routeq simulate`` directory (``events.jsonl``, and the rules it ran
  under in ``rules.toml``);
- a state dir of ``routeq run --state`` or ``routeq serve --state``: its
  input log, and its history of deployed rules (each part of the history is
  read, and re-simulated by the recorded rules candidate, under the rules in
  force then);
- an events file (``routeq export``, or a chat server's own log), with
  ``--trace-rules`` naming the rules it ran under (default: the defaults).

``--trace-rules`` always wins: its rules apply to the whole history.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import Rules, RulesError
from simulators.candidates import read_rules, trace_rules
from simulators.whatif import Trace, TraceError, read_trace
from streams.cli.options import fail
from streams.embedded.runtime import parse_recorded
from streams.embedded.store import StoreError
from streams.http.service import OUTPUTS, S_OUT_FROM


def add_trace_args(p: argparse.ArgumentParser, tenants: bool = True) -> None:
    p.add_argument("trace", metavar="TRACE",
                   help="the history: a routeq simulate directory, a state dir of routeq "
                   "run/serve --state, or an events file (routeq export, a chat server's log)")
    p.add_argument("--trace-rules", metavar="R.toml",
                   help="the rules the history ran under, for all of it (default: "
                   "TRACE/rules.toml of a simulate directory, the deployed rules of a state "
                   "dir, else the defaults)")
    if tenants:
        p.add_argument("--tenant", action="append", default=[], metavar="NAME",
                       help="report on this tenant's chats, visitors, orders and agents "
                       "only (repeatable; the others still route as recorded); with "
                       "several, also one table per tenant")
    p.add_argument("--seed", type=int, default=1, help="seed of the sampled parts (default 1)")
    p.add_argument("--jobs", type=int, help="parallel processes (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")


@dataclass
class Source:
    """Where a history's events are, and the rules it ran under."""

    events: str  # an events file (a state dir's log is written to a temporary one)
    rules: Rules  # in force at its first line
    rules_src: str  # where those came from, in words
    deployments: list[tuple[int, Rules]] = field(default_factory=list)  # (line, rules)
    # the outputs it recorded, where it has them (a simulate directory's, or
    # those routeq serve kept in its state dir): the null test checks them
    outputs: str | None = None
    temporary: bool = False
    simulated: bool = False  # a routeq simulate directory: its clocks are exact
    overridden: int = 0  # deployments in the history that --trace-rules replaced

    @property
    def last(self) -> Rules:
        """The rules in force at the end (what other candidates are made from)."""
        return self.deployments[-1][1] if self.deployments else self.rules

    def close(self) -> None:
        if self.temporary:
            Path(self.events).unlink(missing_ok=True)
            if self.outputs is not None:
                Path(self.outputs).unlink(missing_ok=True)


def open_source(trace: str, rules_path: str | None, workdir: str | None = None) -> Source:
    """The history at ``trace``; :class:`TraceError` or :class:`RulesError` saying
    why it cannot be read."""
    p = Path(trace)
    if p.is_dir() and not (p / "events.jsonl").is_file():
        return _state_dir(trace, rules_path, workdir)
    rules, src = trace_rules(trace, rules_path)
    if p.is_dir():
        outs = p / "outputs.jsonl"
        return Source(str(p / "events.jsonl"), rules, src,
                      outputs=str(outs) if outs.is_file() else None, simulated=True)
    return Source(str(p), rules, src)


def _state_dir(path: str, rules_path: str | None, workdir: str | None) -> Source:
    from streams.cli.common import open_state
    if not (Path(path) / "CURRENT").is_file():  # (opening another dir writes into it)
        raise TraceError(f"{path} is neither a routeq simulate directory (no events.jsonl) "
                         "nor a state dir of routeq run or serve (no database in it)")
    given = read_rules(rules_path)[0] if rules_path is not None else None
    try:
        store, layout = open_state(path)
    except StoreError as exc:
        raise TraceError(f"{path} is not a state dir routeq can read ({exc})") from None
    fd, name = tempfile.mkstemp(prefix="routeq-history-", suffix=".jsonl", dir=workdir)
    outputs: str | None = None
    try:
        history = layout.rules_history()
        at: list[tuple[int, int]] = []  # (log offset, lines written before it)
        written = 0
        wanted = [o for o, _ in history]
        with os.fdopen(fd, "wb") as f:
            for first, lines in layout.segments(0):
                for k, line in enumerate(lines):
                    while wanted and wanted[0] <= first + k:
                        at.append((wanted.pop(0), written))
                    if line.strip():
                        written += 1
                f.write(b"\n".join(lines) + b"\n")
        at += [(o, written) for o in wanted]
        outputs = _stored_outputs(store, workdir)
        if written == 0:
            raise TraceError(f"state dir {path} has an empty log: no history to re-simulate")
        line_of = dict(at)
        deployed = [(line_of[o], parse_recorded(text)) for o, text in history]
    except BaseException as exc:
        Path(name).unlink(missing_ok=True)
        if outputs is not None:
            Path(outputs).unlink(missing_ok=True)
        if isinstance(exc, StoreError):
            raise TraceError(f"state dir {path}: {exc}") from None
        raise
    finally:
        store.close()
    if not deployed or deployed[0][0] > 0:
        deployed.insert(0, (0, parse_recorded("")))
    if given is not None and rules_path is not None:
        return Source(name, given, rules_path, outputs=outputs, temporary=True,
                      overridden=len(deployed) - 1)
    src = (f"the {len(deployed)} rules deployed in turn in {path}" if len(deployed) > 1
           else f"the rules deployed in {path}")
    return Source(name, deployed[0][1], src, deployed[1:], outputs=outputs, temporary=True)


def _stored_outputs(store: Any, workdir: str | None) -> str | None:
    """The outputs routeq serve kept in the state dir, in a temporary file, where
    they cover the log from its start (None otherwise: ``routeq run`` keeps none)."""
    if store.get(S_OUT_FROM) != b"0":
        return None
    fd, name = tempfile.mkstemp(prefix="routeq-outputs-", suffix=".jsonl", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        for _, data in store.items(OUTPUTS):
            f.write(data if data.endswith(b"\n") else data + b"\n")
    return name


def with_source(args: argparse.Namespace, command: str, body: Callable[[Source], int]) -> int:
    """Open ``args.trace`` (with ``--trace-rules``), run ``body`` on it and close
    it; exit code 2 with the reason where it cannot be opened."""
    try:
        source = open_source(args.trace, args.trace_rules)
    except (TraceError, RulesError) as exc:
        return fail(str(exc), command)
    try:
        return body(source)
    finally:
        source.close()


def load_trace(args: argparse.Namespace, command: str, source: Source) -> Trace | None:
    """Read the history, or print why not (``None``)."""
    try:
        trace = read_trace(source.events, source.rules, deployments=source.deployments,
                           tenants=tuple(dict.fromkeys(getattr(args, "tenant", ()))),
                           outputs=source.outputs, simulated=source.simulated)
    except (TraceError, RulesError, OSError) as exc:
        fail(str(exc).replace(source.events, args.trace), command)
        return None
    trace.path = args.trace
    if source.overridden:
        trace.seen["rules deployments replaced by --trace-rules"] = source.overridden
    missing = [t for t in trace.tenants if t not in trace.recorded.get("tenants", {})]
    if missing:
        Path(trace.exo).unlink(missing_ok=True)
        fail(f"--tenant {missing[0]}: no chats, visitors or agents of that tenant in "
             f"{args.trace}", command)
        return None
    return trace
