"""Reading input files in chunks: lines, line numbers and positions (streams/embedded/inputs.py)."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from streams.embedded.inputs import Chunk, read_chunks

LINES = st.lists(st.sampled_from([b'{"a":1}', b"x", b"", b"  ", b"\t", b"y\r", b"\r", b"zz z",
                                  b"w\rv", b"L" * 25, b"M" * 60 + b"\r"]), max_size=30)
MAX_KEPT = 16  # lines longer than this may come out cut to it


def expected(content: bytes, max_kept: int = 1 << 30) -> list[tuple[bytes, int, int]]:
    """(line, line number, byte position after it) of every non-blank line."""
    out = []
    pos = 0
    parts = content.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    for n, raw in enumerate(parts, start=1):
        pos += len(raw) + 1
        line = raw.rstrip(b"\r") if raw.endswith(b"\r") else raw
        if line and not line.isspace():
            out.append((line[:max_kept], n, min(pos, len(content))))
    return out


@given(lines=LINES, final_newline=st.booleans(), read_size=st.integers(1, 40),
       max_lines=st.integers(1, 7), skip=st.integers(0, 5))
def test_chunks_give_every_non_blank_line_with_its_number_and_position(
        lines: list[bytes], final_newline: bool, read_size: int, max_lines: int,
        skip: int) -> None:
    content = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.jsonl")
        with open(path, "wb") as f:
            f.write(content)
        chunks: list[Chunk] = [c for c in read_chunks([path], max_lines=max_lines,
                                                      read_size=read_size,
                                                      max_kept_line=MAX_KEPT) if c is not None]
        got = [(line, n) for c in chunks for line, n in zip(c.lines, c.linenos, strict=True)]
        want = expected(content, MAX_KEPT)
        # a long line is cut to MAX_KEPT bytes at least (more when it came whole in one read)
        assert [n for _, n in got] == [n for _, n, _ in want]
        for (line, _), (full, _, _) in zip(got, expected(content), strict=True):
            assert full.startswith(line) and len(line) >= min(len(full), MAX_KEPT)
        assert sum(c.nbytes for c in chunks) == len(content)
        if chunks:
            assert chunks[-1].pos == len(content)
        # cut(k) is where line k starts: reading on from there gives the rest
        flat = [(c, k) for c in chunks for k in range(len(c.lines))]
        if flat:
            c, k = flat[min(skip, len(flat) - 1)]
            pos, nlines = c.cut(k)
            rest = [(line, n) for r in read_chunks([path], done={path: (pos, nlines)},
                                                   read_size=read_size, max_kept_line=MAX_KEPT)
                    if r is not None
                    for line, n in zip(r.lines, r.linenos, strict=True)]
            i = flat.index((c, k))
            assert [n for _, n in rest] == [n for _, n in got[i:]]
