"""Input lines from files (in order) or stdin, in chunks, with their positions.

A chunk is a list of non-blank lines (``\\r\\n`` stripped) with their line
numbers, plus where the chunk ends in its source: the byte position and the
count of lines read so far. The durable runtime stores that position with the
log, so a rerun with the same files skips what is already logged.

Reading is streaming: a pipe gives whatever has arrived (one line if that is
all there is), so outputs follow inputs without waiting for a full chunk; when
a pipe stays quiet for ``idle_s`` the reader yields ``None`` so the caller can
checkpoint.
"""

from __future__ import annotations

import os
import re
import select
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

READ_SIZE = 1 << 20
#: an unfinished line longer than this is kept cut to this many bytes (the
#: rest is skipped, its bytes still counted): far over the 64 KiB limit of a
#: line, so it is rejected all the same, and a line with no end never fills
#: the memory
MAX_KEPT_LINE = 1 << 20
STDIN = "-"


class InputError(Exception):
    """An input cannot be read (the message names it)."""


@dataclass
class Chunk:
    lines: list[bytes]  # non-blank, without the line end
    linenos: Sequence[int]  # 1-based line number of each, counted over the whole input
    source: str  # absolute path, or "-" for stdin
    pos: int  # byte position in ``source`` just after the chunk
    nlines: int  # lines of ``source`` read up to ``pos`` (blank ones included)
    nbytes: int  # bytes of ``source`` this chunk covers (for a progress bar)
    starts: list[int] | None  # byte position where each line starts; None: every
    #                           line is followed by exactly one "\n" (no blanks, no "\r")
    base: int  # global line number of the line before the source's first

    def cut(self, k: int) -> tuple[int, int]:
        """(byte position, lines of the source) just before line ``k`` of the chunk."""
        if self.starts is None:
            start = self.pos - self.nbytes + sum(len(line) + 1 for line in self.lines[:k])
        else:
            start = self.starts[k]
        return start, self.linenos[k] - 1 - self.base


#: a whitespace-only line inside a block of input
_SPACE_LINE = re.compile(rb"\n[ \t\x0b\x0c]+\n")


def _irregular(data: bytes) -> bool:
    """Whether a block of input may hold a blank or whitespace-only line or a "\r"
    (so its lines need a careful look). Cheaper than one regular expression."""
    return (b"\r" in data or b"\n\n" in data or data[:1].isspace()
            or _SPACE_LINE.search(data) is not None)


def source_name(path: str) -> str:
    """How a source is remembered: stdin as ``-``, a file by absolute path."""
    return STDIN if path == STDIN else os.path.abspath(path)


def check_inputs(paths: list[str]) -> None:
    """Raise InputError naming the first input that cannot be opened."""
    for path in paths:
        if path == STDIN:
            continue
        if not os.path.exists(path):
            raise InputError(f"input file not found: {path}")
        if os.path.isdir(path):
            raise InputError(f"input is a directory, not a file of events: {path}")
        if not os.access(path, os.R_OK):
            raise InputError(f"input file not readable: {path}")


def total_bytes(paths: list[str], done: Mapping[str, tuple[int, int]]) -> int | None:
    """Bytes left to read in ``paths`` (None if one is stdin)."""
    total = 0
    for path in paths:
        if path == STDIN:
            return None
        total += max(0, os.path.getsize(path) - done.get(source_name(path), (0, 0))[0])
    return total


def read_chunks(
    paths: list[str], *, done: Mapping[str, tuple[int, int]] | None = None,
    max_lines: int = 4096, idle_s: float | None = None, read_size: int = READ_SIZE,
    max_kept_line: int = MAX_KEPT_LINE,
) -> Iterator[Chunk | None]:
    """Chunks of at most ``max_lines`` lines from ``paths`` in order.

    ``done`` maps a source to (byte position, lines) already consumed: those
    files are read from there on (stdin is never skipped: it cannot rewind).
    """
    done = done or {}
    lineno_base = 0
    for path in paths:
        name = source_name(path)
        if path == STDIN:
            fd = sys.stdin.buffer.fileno()
            pos, nlines = 0, 0
            closing = False
        else:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise InputError(f"input file not found: {path}") from None
            except OSError as exc:
                raise InputError(f"cannot read input file {path}: {exc.strerror}") from None
            pos, nlines = done.get(name, (0, 0))
            if pos:
                os.lseek(fd, pos, os.SEEK_SET)
            closing = True
        pollable = idle_s is not None and not stat.S_ISREG(os.fstat(fd).st_mode)
        try:
            lineno = yield from _chunks(fd, name, pos, nlines, lineno_base, max_lines,
                                        idle_s if pollable else None, read_size,
                                        max_kept_line)
        finally:
            if closing:
                os.close(fd)
        lineno_base = lineno


def _chunks(fd: int, name: str, pos: int, nlines: int, base: int, max_lines: int,
            idle_s: float | None, read_size: int, max_kept: int) -> Iterator[Chunk | None]:
    """Chunks of one source; returns the last global line number."""
    tail = b""
    excess = 0  # bytes of the unfinished line (``tail``) skipped beyond ``max_kept``
    eof = False
    while not eof:
        if idle_s is not None:
            ready, _, _ = select.select([fd], [], [], idle_s)
            if not ready:
                yield None
                continue
        data = os.read(fd, read_size)
        tail_was = tail
        skipped = excess  # bytes of parts[0] that were not kept
        if data:
            parts = (tail + data).split(b"\n") if tail else data.split(b"\n")
            tail = parts.pop()
            if parts:
                excess = 0
            if len(tail) > max_kept:
                excess += len(tail) - max_kept
                tail = tail[:max_kept]
        elif tail:
            parts, tail, eof = [tail], b"", True  # a last line without a line end
        else:
            break
        if not parts:
            continue
        regular = not eof and not skipped and not _irregular(data) and not (
            tail_was and (tail_was[-1:] == b"\r" or tail_was.isspace()))
        for i in range(0, len(parts), max_lines):
            piece = parts[i:i + max_lines]
            n0 = base + nlines
            if regular:  # the common case: one event a line, nothing to skip
                size = sum(map(len, piece)) + len(piece)
                yield Chunk(piece, range(n0 + 1, n0 + 1 + len(piece)), name, pos + size,
                            nlines + len(piece), size, None, base)
                pos += size
                nlines += len(piece)
                continue
            lines: list[bytes] = []
            linenos: list[int] = []
            starts: list[int] = []
            n = n0
            end = pos
            extra = skipped if i == 0 else 0  # the first line's bytes not kept
            for raw in piece:
                n += 1
                start = end
                end += len(raw) + 1 + extra
                extra = 0
                if raw.endswith(b"\r"):
                    raw = raw.rstrip(b"\r")
                if raw and not raw.isspace():
                    lines.append(raw)
                    linenos.append(n)
                    starts.append(start)
            if eof:
                end -= 1  # that last line had no "\n"
            size = end - pos
            pos = end
            nlines += len(piece)
            yield Chunk(lines, linenos, name, pos, nlines, size, starts, base)
    return base + nlines
