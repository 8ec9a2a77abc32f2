"""What several commands share: opening a state dir (``run`` and ``serve``
for writing, ``replay`` and ``export`` read-only), the output file and the
summary on stderr (``run``, ``replay``)."""

from __future__ import annotations

import argparse
import os
import sys

from engine import Rules, RulesError
from streams.embedded.runtime import Runtime, rules_for
from streams.embedded.state import StateLayout
from streams.embedded.store import RocksStore, StoreError


def open_state(path: str) -> tuple[RocksStore, StateLayout]:
    if not os.path.isdir(path):
        raise StoreError(f"state dir not found: {path}")
    store = RocksStore(path, read_only=True)
    try:
        return store, StateLayout(store, path)
    except StoreError:
        store.close()
        raise


def open_out(path: str | None) -> tuple[int, bool]:
    if path is None:
        return sys.stdout.fileno(), False
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), True


def summary(rt: Runtime, wall: float, name: str) -> None:
    total = rt.applied + rt.rejected
    rate = total / wall if wall > 0 else 0.0
    lines = []
    if rt.resumed_from is not None:
        lines.append(f"resumed from the checkpoint at offset {rt.resumed_from}, "
                     f"re-applied {rt.reapplied} logged events")
    if rt.deployed:
        lines.append(f"deployed rules {rt.rules.hash} from offset {rt.offset_at_resume}")
    lines.append(f"{rt.applied} events applied, {rt.rejected} rejected, "
                 f"{rt.duplicates} duplicates ignored, {wall:.2f} s, {rate:,.0f} events/s")
    out = [f"routeq {name}: " + "\n  ".join(lines)]
    for otype, k in sorted(rt.counts.items()):
        out.append(f"  {otype:16} {k}")
    print("\n".join(out), file=sys.stderr)


def open_state_dir(args: argparse.Namespace, rules: Rules,
                   rules_text: str) -> tuple[StateLayout | None, Rules, str]:
    """``--state`` opened for writing (None without it), with the rules to
    start from: those in force there unless ``--rules`` was given."""
    if not args.state:
        return None, rules, rules_text
    store = RocksStore(args.state, sync=args.sync)
    try:
        layout = StateLayout(store, args.state)
        rules, rules_text = rules_for(layout, rules, rules_text, args.rules is not None)
    except (StoreError, RulesError):
        store.close()
        raise
    return layout, rules, rules_text
