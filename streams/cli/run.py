"""``routeq run``: events in (files or stdin), decisions out, in memory or durable.

Without ``--state`` the engine lives in memory and an output's ``offset`` is
its input's position among the non-blank input lines. With ``--state DIR``
the input log, the engine's entities and the checkpoint live in one rocksdict
database under DIR (see ``streams/embedded/runtime.py`` for the write order that makes
a kill at any point safe); running the same command again resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from engine import RulesError
from streams.cli.common import open_state_dir, summary
from streams.cli.options import add_number, add_rules, fail
from streams.embedded.inputs import InputError, check_inputs, read_chunks, total_bytes
from streams.embedded.outfile import open_resumed
from streams.embedded.rules_file import read_rules
from streams.embedded.runtime import (
    DEFAULT_CHECKPOINT_EVENTS,
    DEFAULT_CHECKPOINT_MS,
    Runtime,
    Sink,
    StrictStop,
    paused_gc,
)
from streams.embedded.state import StateLayout
from streams.embedded.store import StoreError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run",
        help="apply events and write routing decisions as JSON Lines",
        description="Apply events from files (in order) or stdin ('-') and write the outputs "
        "as JSON Lines. Bad lines become event.rejected outputs and the run goes on. "
        "With --state DIR the run is durable: run the same command again after a crash "
        "and it resumes from its last checkpoint.",
    )
    run.add_argument("events", nargs="*", default=["-"], metavar="EVENTS",
                     help="event files (JSON Lines), or - for stdin (default)")
    add_rules(run, default="the rules recorded in --state, else the built-in defaults",
              more="; other rules than the recorded ones are deployed from the end of the "
                   "log on")
    run.add_argument("--state", metavar="DIR",
                     help="durable state directory (one rocksdict database): input log, "
                          "entities, checkpoint")
    run.add_argument("--out", metavar="FILE",
                     help="write outputs here (default: stdout); with --state a resumed run "
                          "appends to it without duplicates")
    run.add_argument("--strict", action="store_true",
                     help="stop at the first bad line with exit code 2")
    add_number(run, "--checkpoint-every", default=DEFAULT_CHECKPOINT_EVENTS, minimum=1,
               metavar="N", help="checkpoint every N events")
    add_number(run, "--checkpoint-ms", default=DEFAULT_CHECKPOINT_MS, minimum=1, metavar="T",
               help="... or every T ms of wall time while input flows")
    run.add_argument("--sync", action="store_true",
                     help="fsync every write of the state (survives power loss, slower)")
    run.add_argument("--quiet", action="store_true", help="no summary or progress on stderr")
    return run


def main(args: argparse.Namespace) -> int:
    try:
        check_inputs(args.events)
        rules, rules_text = read_rules(args.rules)  # before the state is touched
    except (InputError, RulesError) as exc:
        return fail(str(exc))
    try:
        layout, rules, rules_text = open_state_dir(args, rules, rules_text)
    except (StoreError, RulesError) as exc:
        return fail(str(exc))
    store = layout.store if layout is not None else None
    try:
        return _run(args, rules, rules_text, layout)
    finally:
        if store is not None:
            store.close()


def _run(args: argparse.Namespace, rules: Any, rules_text: str,
         layout: StateLayout | None) -> int:
    emit_from = 0
    if args.out is None:
        fd, own = sys.stdout.fileno(), False
    elif layout is not None and layout.logged:
        fd, emit_from = open_resumed(args.out, layout.applied, layout.logged)
        own = True
    else:
        fd, own = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), True
    started = time.perf_counter()
    rt = Runtime(rules, Sink(fd), layout, rules_text=rules_text,
                 checkpoint_every=args.checkpoint_every, checkpoint_ms=args.checkpoint_ms,
                 strict=args.strict)
    progress = None
    code = 0
    try:
        with paused_gc():  # restoring builds millions of objects at once
            rt.resume(emit_from)
        done = layout.inputs if layout is not None else None
        chunks = read_chunks(args.events, done=done, idle_s=args.checkpoint_ms / 1000)
        if not args.quiet and "-" not in args.events and sys.stderr.isatty():
            from tqdm import tqdm  # only when a person watches

            progress = tqdm(total=total_bytes(args.events, done or {}), unit="B",
                            unit_scale=True, file=sys.stderr, desc="routeq run",
                            leave=False)
        rt.run(chunks, progress)
    except StrictStop as exc:
        code = fail(f"--strict: stopped at a bad line: {exc}")
    except InputError as exc:  # an input became unreadable: keep what was applied
        rt.finish()
        code = fail(str(exc))
    except (RulesError, StoreError) as exc:  # recorded rules, a damaged state dir
        code = fail(str(exc))
    finally:
        if progress is not None:
            progress.close()
        if own:
            os.close(fd)
    if not args.quiet:
        summary(rt, time.perf_counter() - started, "run")
    return code
