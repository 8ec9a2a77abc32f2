"""``--out FILE`` after a kill: mended so that appending the re-derived outputs
gives exactly the uninterrupted file (streams/embedded/outfile.py)."""

from __future__ import annotations

import os
import tempfile

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.embedded.outfile import complete_lines, consume, open_resumed


def output_lines(groups: list[int]) -> list[tuple[int, bytes]]:
    """``groups[i]`` outputs for offset i (offsets with none are skipped)."""
    return [(off, orjson.dumps({"type": "chat.queued", "offset": off, "n": k, "pad": "x" * k})
             + b"\n") for off, count in enumerate(groups) for k in range(count)]


def first_incomplete(written: list[tuple[int, bytes]], cut: int, logged: int) -> int:
    """The first offset whose outputs are not all in the first ``cut`` bytes of
    ``written`` (``logged``, the end of the log, when they all are)."""
    pos = 0
    for off, line in written:
        if pos + len(line) > cut:
            return off
        pos += len(line)
    return logged


@settings(deadline=None)  # file I/O on a shared machine
@given(groups=st.lists(st.integers(0, 4), min_size=1, max_size=30), data=st.data())
def test_mended_file_plus_rederived_outputs_is_the_uninterrupted_file(
        groups: list[int], data: st.DataObject) -> None:
    full = output_lines(groups)
    whole = b"".join(line for _, line in full)
    logged = len(groups)
    # the kill left a prefix of the bytes; the checkpoint is at or before the
    # first offset whose outputs were not all written
    cut = data.draw(st.integers(0, len(whole)), label="bytes written")
    written = whole[:cut]
    applied = data.draw(st.integers(0, first_incomplete(full, cut, logged)), label="checkpoint")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.jsonl")
        with open(path, "wb") as f:
            f.write(written)
        fd, emit_from = open_resumed(path, applied, logged)
        try:
            rederived = b"".join(line for off, line in full
                                 if off >= applied and off >= emit_from)
            os.write(fd, rederived)
        finally:
            os.close(fd)
        with open(path, "rb") as f:
            assert f.read() == whole


def test_a_file_not_written_from_this_state_is_only_completed() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.jsonl")
        with open(path, "wb") as f:
            f.write(b'{"offset": 90}\n{"offset": 99}\n{"offs')
        fd, emit_from = open_resumed(path, 10, 50)  # 99 is beyond this state's log
        os.close(fd)
        assert emit_from == 0
        with open(path, "rb") as f:
            assert f.read() == b'{"offset": 90}\n{"offset": 99}\n'


# --- consume: the README's consumer rule over the outputs of successive runs ---


def out(off: int, name: str) -> bytes:
    return orjson.dumps({"type": "chat.queued", "offset": off, "chat": name})


def test_consume_drops_below_high_replaces_at_high_and_takes_the_rest() -> None:
    a, b, c, d, e, f = (out(0, "a"), out(0, "b"), out(1, "c"), out(2, "d"), out(2, "e"),
                        out(3, "f"))
    # killed while writing e: offset 2's group is cut short (d kept, e half a line)
    first = b"\n".join([a, b, c, d]) + b"\n" + e[:7]
    # restarted from the checkpoint at offset 1: c again (below H = 2, dropped),
    # d and e (at H: replace the d kept), f (after H: taken)
    second = b"\n".join([c, d, e, f]) + b"\n"
    assert consume([first, second]) == [a, b, c, d, e, f]
    # a run killed before it wrote anything changes nothing
    assert consume([first, b"", second]) == [a, b, c, d, e, f]
    # an incomplete last line is not an output
    assert consume([first]) == [a, b, c, d]
    assert complete_lines(first) == [a, b, c, d]


def test_consume_refuses_a_line_without_an_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        consume([b'{"type": "chat.queued"}\n'])


@settings(deadline=None)  # file I/O on a shared machine
@given(groups=st.lists(st.integers(0, 3), min_size=1, max_size=25),
       kills=st.integers(0, 6), data=st.data())
def test_consume_over_killed_runs_is_the_uninterrupted_run(
        groups: list[int], kills: int, data: st.DataObject) -> None:
    """Each run re-derives the outputs from its checkpoint on and is killed after
    any number of bytes; the next checkpoint is at or after this one and not past
    the first offset whose outputs this run did not write completely (outputs are
    written before their checkpoint). The last run finishes."""
    full = output_lines(groups)
    logged = len(groups)
    runs, checkpoint = [], 0
    for _ in range(kills):
        emitted = [(off, line) for off, line in full if off >= checkpoint]
        stream = b"".join(line for _, line in emitted)
        cut = data.draw(st.integers(0, len(stream)), label="bytes written")
        runs.append(stream[:cut])
        upto = max(checkpoint, first_incomplete(emitted, cut, logged))
        checkpoint = data.draw(st.integers(checkpoint, upto), label="checkpoint")
    runs.append(b"".join(line for off, line in full if off >= checkpoint))
    assert consume(runs) == [line[:-1] for _, line in full]
