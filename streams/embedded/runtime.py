"""The embedded runtime: input lines → log → engine → output lines.

``Runtime`` feeds chunks of input lines to one ``Engine``. In memory
(``layout=None``) an input's offset is its position in the input (non-blank
lines, from 0). With a durable ``StateLayout`` it is the position in the log,
and each chunk goes through these steps, in this order:

1. decode every line (a bad line becomes ``event.rejected`` later, in place);
2. write ONE batch: the chunk's lines as a log segment, how far the input has
   been read, and, when a checkpoint is due (every ``checkpoint_every`` events
   or ``checkpoint_ms`` of wall time), the entities changed by everything
   applied before the chunk and the offset up to which they are applied;
3. apply the chunk and write its outputs with one ``write(2)``.

So an input is in the log before it is applied, and a checkpoint covers only
inputs whose outputs were already written. Killed at any point, a rerun finds
a log prefix and a checkpoint at or before its end: it restores the entities,
re-applies the log after the checkpoint (re-emitting those outputs with the
same offsets; consumers drop them, see ``README.md``) and reads the input on
from where the log ends.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from engine import Engine, Rules, RulesError, rules_from_toml, views
from schemas.events import Event, EventError, decode_lines
from schemas.outputs import Output, encode_lines
from streams.embedded.inputs import Chunk
from streams.embedded.state import StateLayout

DEFAULT_CHECKPOINT_EVENTS = 100_000
DEFAULT_CHECKPOINT_MS = 2_000

#: test-only: ``<point>:<n>`` kills the process with SIGKILL at the n-th time
#: it passes ``point`` (``checkpoint``: a batch holding a checkpoint is about to
#: be written; ``before-write``, ``after-write``, ``after-apply``: of every
#: chunk; ``before-final``); see tests/embedded/test_crash_safety.py
CRASH_ENV = "ROUTEQ_CRASH_POINT"


#: events between two ``settle_garbage`` calls
FREEZE_EVERY = 50_000


def settle_garbage() -> None:
    """Collect cyclic garbage, then move every live object out of the collector's sight.

    The engine's state grows to millions of objects that live for the whole
    run; without this every full collection walks all of them again (a third
    of the run time on a large input). ``gc.collect`` here only walks what was
    allocated since the last call, and frozen objects are still freed by
    reference counting when the engine drops them.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector; ``settle_garbage`` runs it now and
    then instead (reference counting frees nearly everything anyway)."""
    was_enabled = gc.isenabled()
    gc.disable()
    settle_garbage()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class StrictStop(Exception):
    """--strict met a bad line."""

    def __init__(self, lineno: int | None, error: EventError) -> None:
        super().__init__(f"line {lineno}: {error}" if lineno is not None else str(error))


class OutputSink(Protocol):
    """Where a runtime's outputs go: each batch as the outputs and their JSON
    Lines (``encode_lines``), so that no sink parses what it is handed."""

    def outputs(self, outputs: list[Output], data: bytes) -> None: ...


class Sink:
    """Output lines to a file descriptor, one ``write(2)`` per batch of outputs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def outputs(self, outputs: list[Output], data: bytes) -> None:
        self.write(data)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]


class _Crash:
    def __init__(self) -> None:
        spec = os.environ.get(CRASH_ENV, "")
        point, _, n = spec.partition(":")
        self.point = point
        self.left = int(n) if n else 1
        self.active = bool(spec)

    def at(self, point: str) -> None:
        if self.active and point == self.point:
            self.left -= 1
            if self.left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)


def rules_in_force(history: list[tuple[int, str]], offset: int) -> tuple[int, str] | None:
    """The (offset, text) of the rules deployed last at or before ``offset``."""
    found = None
    for first, text in history:
        if first > offset:
            break
        found = (first, text)
    return found


def parse_recorded(text: str) -> Rules:
    try:
        return rules_from_toml(text)
    except RulesError as exc:
        raise RulesError(f"rules recorded in the state dir no longer load: {exc}") from None


def rules_for(layout: StateLayout | None, rules: Rules, rules_text: str,
              explicit: bool) -> tuple[Rules, str]:
    """The rules a command starts with: without an explicit rules file
    (``explicit``), the rules in force in the state dir, else ``rules``."""
    if layout is not None and not explicit:
        history = layout.rules_history()
        if history:
            return parse_recorded(history[-1][1]), history[-1][1]
    return rules, rules_text


class Runtime:
    def __init__(
        self, rules: Rules, sink: OutputSink, layout: StateLayout | None = None, *,
        rules_text: str = "", checkpoint_every: int = DEFAULT_CHECKPOINT_EVENTS,
        checkpoint_ms: int = DEFAULT_CHECKPOINT_MS, strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.rules_text = rules_text
        self.sink = sink
        self.layout = layout
        self.checkpoint_every = max(1, checkpoint_every)
        self.checkpoint_s = checkpoint_ms / 1000
        self.strict = strict
        self.clock = clock
        self.crash = _Crash()
        self.engine = Engine(rules, track_changes=layout is not None)
        self.offset = 0
        self.counts: Counter[str] = Counter()
        self.applied = 0
        self.rejected = 0
        self.reapplied = 0
        self.resumed_from: int | None = None
        self.deployed = False
        self.offset_at_resume = 0
        self._ids0 = 0
        self._since_cp = 0
        self._cp_at = clock()

    # ------------------------------------------------------------ start

    def resume(self, emit_from: int = 0) -> None:
        """Restore from the state dir, re-emit the outputs after its checkpoint
        (those with an offset below ``emit_from`` are not written again), and
        deploy this runtime's rules if they differ from the recorded ones."""
        layout = self.layout
        if layout is None:
            return
        history = layout.rules_history()
        if layout.logged or layout.applied:
            self.resumed_from = layout.applied
            at = rules_in_force(history, layout.applied)
            old = parse_recorded(at[1]) if at is not None else self.rules
            self.engine = Engine.restore(old, layout.records())
            self.offset = layout.applied
            switches = [(o, t) for o, t in history if o > layout.applied]
            for first, lines in layout.segments(layout.applied):
                while switches and switches[0][0] <= first:
                    self._switch(parse_recorded(switches.pop(0)[1]))
                out = self._apply(first, lines, self._decode(lines),
                                  layout.linenos(first, first + len(lines)))
                self.reapplied += len(lines)
                if emit_from:
                    out = [o for o in out if o["offset"] >= emit_from]
                self.counts.update([o["type"] for o in out])
                if out:
                    self.sink.outputs(out, encode_lines(out))
            self.offset = layout.logged
        last = history[-1] if history else None
        if last is None or parse_recorded(last[1]).hash != self.rules.hash:
            b = layout.start_batch()
            layout.checkpoint(b, self.engine.take_changes(), self.offset)
            layout.deploy(b, self.offset, self.rules_text, self.rules.hash)
            layout.store.write(b)
            self.deployed = last is not None
            self.offset_at_resume = self.offset
            if self.engine.rules is not self.rules:
                self._switch(self.rules)
        self._ids0 = views.remembered_ids(self.engine)
        self._since_cp = 0
        self._cp_at = self.clock()

    def replay(self, layout: StateLayout, *, recorded_rules: bool = True) -> None:
        """Apply the whole recorded log from offset 0 (the runtime is in memory).

        With ``recorded_rules`` the rules follow the state's history of
        deployments, as ``run`` applied them; otherwise this runtime's rules
        apply throughout (a what-if).
        """
        switches = layout.rules_history() if recorded_rules else []
        if switches and switches[0][0] == 0:
            self.engine = Engine(parse_recorded(switches.pop(0)[1]), track_changes=False)
        for first, lines in layout.segments(0):
            while switches and switches[0][0] <= first:
                self._switch(parse_recorded(switches.pop(0)[1]))
            decoded = self._decode(lines)
            out = self._apply(first, lines, decoded, layout.linenos(first, first + len(lines)))
            bad = sum(1 for ev in decoded if type(ev) is not dict)
            self.rejected += bad
            self.applied += len(lines) - bad
            self.offset = first + len(lines)
            if out:
                self.counts.update([o["type"] for o in out])
                self.sink.outputs(out, encode_lines(out))

    def _switch(self, rules: Rules) -> None:
        """Carry the engine's entities over to ``rules`` (recomputing priorities)."""
        self.engine = Engine.restore(rules, self.engine.snapshot(),
                                     track_changes=self.engine.track_changes)

    # ------------------------------------------------------------ feeding

    @staticmethod
    def _decode(lines: list[bytes]) -> list[Event | EventError]:
        return decode_lines(lines)[0]

    def _apply(self, first: int, lines: list[bytes], decoded: list[Event | EventError],
               linenos: dict[int, int] | Sequence[int]) -> list[Output]:
        engine = self.engine
        apply = engine.apply
        out: list[Output] = []
        extend = out.extend
        off = first
        for ev in decoded:
            if type(ev) is dict:
                extend(apply(ev, off))
            else:
                i = off - first
                lineno = linenos.get(off) if isinstance(linenos, dict) else linenos[i]
                out.append(engine.reject(ev, lines[i], line=lineno, offset=off))  # type: ignore[arg-type]
            off += 1
        return out

    def feed(self, chunk: Chunk,
             decoded_as: tuple[list[Event | EventError], list[int]] | None = None) -> None:
        """Log (with --state), apply and emit one chunk of input lines.

        ``decoded_as``: the lines decoded already, as ``decode_lines`` gives
        them (``routeq serve`` decodes each posted line to answer for it), so
        they are not decoded again.
        """
        lines = chunk.lines
        decoded, bad = decoded_as if decoded_as is not None else decode_lines(lines)
        stop: StrictStop | None = None
        pos, nlines = chunk.pos, chunk.nlines
        if bad and self.strict:
            k = bad[0]
            stop = StrictStop(chunk.linenos[k], decoded[k])  # type: ignore[arg-type]
            pos, nlines = chunk.cut(k)
            lines, decoded, bad = lines[:k], decoded[:k], []
        layout = self.layout
        first = self.offset
        if layout is not None:
            b = layout.start_batch()
            if self._checkpoint_due():
                self._checkpoint(b)
                self.crash.at("checkpoint")
            if lines:
                rejected = [(first + i, chunk.linenos[i]) for i in bad]
                layout.append(b, lines, rejected, chunk.source, pos, nlines)
            elif chunk.source != "-":
                layout.inputs[chunk.source] = (pos, nlines)
                layout.append_inputs(b)
            self.crash.at("before-write")
            layout.store.write(b)
            self.crash.at("after-write")
        out = self._apply(first, lines, decoded, chunk.linenos)
        self.offset = first + len(lines)
        self._since_cp += len(lines)
        self.rejected += len(bad)
        self.applied += len(lines) - len(bad)
        if out:
            self.counts.update([o["type"] for o in out])
            self.sink.outputs(out, encode_lines(out))
        self.crash.at("after-apply")
        if stop is not None:
            self.finish()
            raise stop

    def idle(self) -> None:
        """The input is quiet: checkpoint if one is due."""
        if self.layout is not None and self._since_cp and self._checkpoint_due():
            b = self.layout.start_batch()
            self._checkpoint(b)
            self.layout.store.write(b)

    def finish(self) -> None:
        """Checkpoint everything applied (the end of the input)."""
        if self.layout is None:
            return
        self.crash.at("before-final")
        b = self.layout.start_batch()
        self._checkpoint(b)
        self.layout.store.write(b)

    def _checkpoint_due(self) -> bool:
        return (self._since_cp >= self.checkpoint_every
                or (self._since_cp > 0 and self.clock() - self._cp_at >= self.checkpoint_s))

    def _checkpoint(self, b: Any) -> None:
        assert self.layout is not None
        self.layout.checkpoint(b, self.engine.take_changes(), self.offset)
        self._since_cp = 0
        self._cp_at = self.clock()

    # ------------------------------------------------------------ results

    @property
    def duplicates(self) -> int:
        return self.applied - (views.remembered_ids(self.engine) - self._ids0)

    def run(self, chunks: Iterable[Chunk | None], progress: Any = None) -> None:
        """Feed every chunk, then checkpoint."""
        with paused_gc():
            self._run(chunks, progress)

    def _run(self, chunks: Iterable[Chunk | None], progress: Any) -> None:
        since_freeze = 0
        for chunk in chunks:
            if chunk is None:
                self.idle()
                continue
            self.feed(chunk)
            if progress is not None:
                progress.update(chunk.nbytes)
            since_freeze += len(chunk.lines)
            if since_freeze >= FREEZE_EVERY:
                settle_garbage()
                since_freeze = 0
        self.finish()
