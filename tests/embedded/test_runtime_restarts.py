"""The runtime stopped after any write of its state, in process, then resumed.

A ``MemoryStore`` that stops the process (raises ``Stopped``) just before or
just after its n-th write stands for a kill at every possible point between
two writes; the next runtime resumes from what the store holds. Cheap enough
to try every cut of Hypothesis-generated streams (the subprocess test with
real SIGKILLs is tests/embedded/test_crash_safety.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import default_rules
from streams.embedded.inputs import read_chunks
from streams.embedded.runtime import Runtime, Sink
from streams.embedded.state import StateLayout
from streams.embedded.store import Batch, MemoryStore
from tests.routeq import consume, lines
from tests.strategies import streams


class Stopped(Exception):
    pass


class StoppingStore(MemoryStore):
    """Stops before (``after=False``) or after its ``n``-th write."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_at: tuple[int, bool] | None = None
        self.writes = 0

    def write(self, batch: Batch) -> None:
        self.writes += 1
        if self.stop_at is not None and self.stop_at == (self.writes, False):
            raise Stopped
        super().write(batch)
        if self.stop_at is not None and self.stop_at == (self.writes, True):
            raise Stopped


def run_once(store: StoppingStore, path: Path, out: Path, every: int) -> bool:
    """One process lifetime; True if it ran to the end."""
    layout = StateLayout(store)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        rt = Runtime(default_rules(), Sink(fd), layout, checkpoint_every=every,
                     checkpoint_ms=10**9)
        rt.resume()
        rt.run(read_chunks([str(path)], done=layout.inputs, max_lines=3))
        return True
    except Stopped:
        return False
    finally:
        os.close(fd)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(max_size=40, duplicates=True), every=st.integers(1, 8),
       stops=st.lists(st.tuples(st.integers(1, 12), st.booleans()), max_size=4))
def test_stopped_after_any_write_and_resumed_equals_one_run(
        events: list[dict[str, Any]], every: int, stops: list[tuple[int, bool]]) -> None:
    data = b"".join(orjson.dumps(e) + b"\n" for e in events)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "in.jsonl").write_bytes(data)
        fd = os.open(p / "ref", os.O_WRONLY | os.O_CREAT)
        rt = Runtime(default_rules(), Sink(fd))
        rt.run(read_chunks([str(p / "in.jsonl")]))
        os.close(fd)
        ref = (p / "ref").read_bytes()
        store = StoppingStore()
        runs = []
        for i, stop in enumerate([*stops, None]):
            store.writes = 0
            store.stop_at = stop
            out = p / f"run{i}"
            run_once(store, p / "in.jsonl", out, every)
            runs.append(out.read_bytes())
        assert consume(runs) == lines(ref)
        # the log holds every line once, in order
        logged = [line for _, seg in StateLayout(store).segments(0) for line in seg]
        assert logged == lines(data)
