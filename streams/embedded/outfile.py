"""The ``--out`` file of a durable run: appended to on resume, never duplicated.

A run killed in the middle of writing its outputs may leave an incomplete last
line, and the outputs of its last input may be cut short. When the same
``--state`` is run again, the runtime re-derives every output after its last
checkpoint. ``open_resumed`` prepares the file for that: it cuts an
incomplete last line and, when the highest offset ``H`` in the file is at or
after the checkpoint, the outputs of ``H`` (the only ones that may be cut
short), and says that re-derived outputs with an offset below ``H`` are
already there. Appending the re-derived outputs from
``H`` on then leaves the file exactly as an uninterrupted run would have.

That is the consumer rule of the README, applied to the file by the runtime;
``consume`` is the same rule as a consumer of the runs' outputs applies it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

import orjson

_BLOCK = 1 << 16


def _complete_end(fd: int, size: int) -> int:
    """The byte position just after the last newline (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        data = os.pread(fd, end - start, start)
        nl = data.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def _lines_back(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(byte position, line) of the complete lines before ``end``, last first."""
    pos, buf = end, b""  # buf = the file's bytes [pos, end of unread lines)
    while True:
        j = buf.rfind(b"\n", 0, len(buf) - 1) if buf else -1
        if j >= 0:
            yield pos + j + 1, buf[j + 1:-1]
            buf = buf[:j + 1]
        elif pos > 0:
            start = max(0, pos - _BLOCK)
            buf = os.pread(fd, pos - start, start) + buf
            pos = start
        else:
            if buf:
                yield 0, buf[:-1]
            return


def _offset(line: bytes) -> int | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    off = obj.get("offset") if isinstance(obj, dict) else None
    return off if type(off) is int else None


def open_resumed(path: str, applied: int, logged: int) -> tuple[int, int]:
    """Open ``path`` for appending after a resume; return (fd, emit_from).

    ``applied`` is the state's checkpoint (re-derived outputs start there) and
    ``logged`` the end of its log. Re-derived outputs with an offset below
    ``emit_from`` are in the file already. When the file's highest offset is
    below ``applied``, its outputs are complete and nothing is cut; when it is
    not below ``logged``, the file was not written from this state, so only an
    incomplete line is cut and every re-derived output is appended.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # /dev/null, a pipe: nothing to mend
        return fd, 0
    rd = os.open(path, os.O_RDONLY)
    try:
        end = _complete_end(rd, os.fstat(rd).st_size)
        cut, high = end, None
        for start, line in _lines_back(rd, end):
            off = _offset(line)
            if off is None or (high is not None and off != high):
                break
            high, cut = off, start
    finally:
        os.close(rd)
    if high is None or not applied <= high < logged:
        cut, high = end, 0
    os.ftruncate(fd, cut)
    os.lseek(fd, cut, os.SEEK_SET)
    return fd, high


def complete_lines(data: bytes) -> list[bytes]:
    """The complete lines of an output stream, without their newlines (an
    incomplete last line, which a kill may leave, is not an output)."""
    parts = data.split(b"\n")
    parts.pop()  # "" after the last newline, or an incomplete line
    return parts


def output_offset(line: bytes) -> int:
    """The ``offset`` of one output line; ValueError if it has none."""
    off = _offset(line)
    if off is None:
        raise ValueError(f"not an output with an integer 'offset': {line[:200]!r}")
    return off


def consume(runs: Iterable[bytes]) -> list[bytes]:
    """The README's consumer rule ("Duplicates after a restart") over the
    outputs of successive runs of one ``--state``: what a consumer keeps.

    ``runs`` are the bytes each run wrote, in order (the last may be the one
    that finished). Keep H, the highest offset taken in; from a restarted run,
    drop outputs whose offset is below H; its first output at H replaces the
    outputs kept for H (a kill may have cut that group short); take everything
    after H. Incomplete last lines are dropped. The result, for runs that ended
    with one finishing, is the output lines of one uninterrupted run.
    """
    kept: list[tuple[int, bytes]] = []
    for data in runs:
        high = kept[-1][0] if kept else -1
        replaced = False
        for line in complete_lines(data):
            off = output_offset(line)
            if off < high:
                continue
            if off == high and not replaced:
                while kept and kept[-1][0] == high:
                    kept.pop()
                replaced = True
            kept.append((off, line))
    return [line for _, line in kept]
