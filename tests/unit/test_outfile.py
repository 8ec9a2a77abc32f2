"""``--out FILE`` after a kill: mended so that appending the re-derived outputs
gives exactly the uninterrupted file (streams/outfile.py)."""

from __future__ import annotations

import os
import tempfile

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.outfile import open_resumed


def output_lines(groups: list[int]) -> list[tuple[int, bytes]]:
    """``groups[i]`` outputs for offset i (offsets with none are skipped)."""
    return [(off, orjson.dumps({"type": "chat.queued", "offset": off, "n": k, "pad": "x" * k})
             + b"\n") for off, count in enumerate(groups) for k in range(count)]


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
    pos, first_incomplete = 0, logged
    for off, line in full:
        if pos + len(line) > cut:
            first_incomplete = off
            break
        pos += len(line)
    applied = data.draw(st.integers(0, first_incomplete), label="checkpoint")
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
