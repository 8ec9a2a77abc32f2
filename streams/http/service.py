"""The live service's core, with no HTTP in it: ``routeq serve`` is a thin shell over it.

``Service`` owns one embedded ``Runtime`` (durable with a ``StateLayout``) and

- ``submit(requests)``: logs and applies the lines of several requests as ONE
  chunk (one write to the state's log, so concurrent small posts commit
  together) and says, per line, ``accepted`` (with its offset), ``duplicate``
  or ``rejected`` (with the error naming the field). When it returns, every
  line is in the log: it survives a killed process.
- fans every output out to subscribers, each output numbered
  ``(offset, k)`` = (its input's offset, its index among that input's
  outputs). The numbering is a pure function of the log, so a subscriber that
  reconnects with the last number it saw resumes with no gap and no
  duplicate, across restarts too (recent outputs are kept in memory; older
  ones are re-derived by replaying the log, which gives the same bytes).
- answers the read views (a chat's state and queue position, a tenant's
  queue and agents) from the engine's state, and keeps the per-minute
  service-level figures that ``/metrics`` and the dashboard show, where a chat
  counts once (``Minute``): at its first ``chat.assigned``, or at a
  ``chat.abandoned`` that came before any.

With a state dir the service keeps two things of its own there, beside the
runtime's key spaces (``streams/embedded/state.py``); ``routeq run``, ``replay`` and
``export`` ignore them:

- the outputs, as ``O`` + the offset of the segment's last output (8 bytes,
  big-endian) -> the output lines of one log segment, written after the
  segment is applied (``Sout-from`` / ``Sout-to``: the stored outputs cover
  the offsets from..to). A stream that resumes before the in-memory history
  reads them from the segment holding its position on, instead of
  re-deriving every output from offset 0;
- ``W`` + tenant -> ``OFFSET.K``: the last output its webhook receiver
  acknowledged (deliveries resume after it across restarts).

Everything here runs on one thread (the server's event loop); only
``read_range`` / ``replay_range`` may run in a worker thread (they read the
store, never the live engine).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine import Rules, views
from schemas.events import EventError, decode_lines, parse_lines
from streams.embedded.inputs import Chunk
from streams.embedded.runtime import FREEZE_EVERY, Runtime, paused_gc, settle_garbage
from streams.embedded.state import StateLayout, pack_offset

#: outputs kept in memory for resuming streams (older ones come from a replay)
DEFAULT_HISTORY = 200_000
#: a subscriber that falls this many outputs behind is dropped (it reconnects)
MAX_BACKLOG = 100_000
SERVICE_LEVEL_MS = 20_000
MINUTE_MS = 60_000
WINDOW_MINUTES = 60
#: chats that ended (or were abandoned) that ``chat_view`` still answers for
CLOSED_KEPT = 100_000
#: answered chats still open that the figures remember, so that a reassignment
#: or an abandonment of theirs does not count again; past this many the oldest
#: are forgotten (a reassignment of one of those would count as an answer)
ANSWERED_KEPT = 200_000

Cursor = tuple[int, int]  # (offset, index among that offset's outputs)

#: the service's key spaces in the state dir (see the module's docstring)
OUTPUTS = b"O"
S_OUT_FROM, S_OUT_TO = b"Sout-from", b"Sout-to"
WEBHOOK = b"W"


def format_cursor(cur: Cursor) -> str:
    """(123, 4) -> "123.4"; (123, -1) -> "123" (the inverse of ``parse_cursor``)."""
    return f"{cur[0]}.{cur[1]}" if cur[1] >= 0 else str(cur[0])


def parse_cursor(text: str | None) -> Cursor | None:
    """``"123.4"`` -> (123, 4); ``"123"`` -> (123, -1): everything of offset
    123 on. None or "" -> None. ValueError for anything else."""
    if not text:
        return None
    off, _, k = text.strip().partition(".")
    cur = (int(off), int(k) if k else -1)
    if cur[0] < 0 or cur[1] < -1:
        raise ValueError(text)
    return cur


@dataclass(slots=True)
class Item:
    """One output as the service fans it out."""

    offset: int
    k: int
    tenant: str
    origin: str | None
    type: str
    line: bytes  # the output's JSON (no line end)

    @property
    def cursor(self) -> Cursor:
        return (self.offset, self.k)

    @property
    def id(self) -> str:
        return f"{self.offset}.{self.k}"

    def visible_to(self, tenant: str | None) -> bool:
        """None = every tenant (the admin). A tenant sees its own outputs and
        those of its chats that overflowed to the platform."""
        return tenant is None or self.tenant == tenant or self.origin == tenant


def _cursor_of(it: Item) -> Cursor:
    return (it.offset, it.k)


def numbered(outputs: Iterable[tuple[Mapping[str, Any], bytes]], last: Cursor,
             ) -> tuple[list[Item], Cursor]:
    """``outputs`` (each with its JSON line) as ``Item``s numbered ``(offset, k)``:
    k counts the outputs of one input offset, going on from ``last`` (the
    number of the output before them); and the number of the last one."""
    last_off, k = last
    items: list[Item] = []
    for o, line in outputs:
        off = o.get("offset", last_off)
        if off == last_off:
            k += 1
        else:
            last_off, k = off, 0
        items.append(Item(off, k, o.get("tenant", ""), o.get("origin"), o["type"], line))
    return items, (last_off, k)


def _with_lines(outputs: list[dict[str, Any]], data: bytes,
                ) -> Iterable[tuple[dict[str, Any], bytes]]:
    """A runtime's outputs, each with its line of ``data`` (their JSON Lines)."""
    return zip(outputs, data.split(b"\n")[:-1], strict=True)


def _parsed(data: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Stored output lines, each with its value."""
    loads = orjson.loads
    for line in data.split(b"\n"):
        if line:
            yield loads(line), line


class History:
    """The recent outputs, oldest first: a list whose head is cut lazily, so
    a stream finds its place by bisection and reads a page at a time."""

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.head = 0  # items[:head] are gone

    def __len__(self) -> int:
        return len(self.items) - self.head

    def __iter__(self) -> Iterator[Item]:
        return itertools.islice(self.items, self.head, None)

    def __bool__(self) -> bool:
        return len(self.items) > self.head

    def extend(self, items: Sequence[Item]) -> None:
        self.items.extend(items)

    def first(self) -> Item:
        return self.items[self.head]

    def popleft(self) -> Item:
        it = self.items[self.head]
        self.head += 1
        if self.head >= 4096 and self.head * 2 >= len(self.items):
            del self.items[:self.head]
            self.head = 0
        return it

    def page(self, after: Cursor, tenant: str | None, limit: int | None) -> list[Item]:
        """About ``limit`` outputs after ``after`` visible to ``tenant``: all
        the outputs of the last offset taken come too (a webhook delivers an
        input's outputs together)."""
        items = self.items
        i = bisect.bisect_right(items, after, lo=self.head, key=_cursor_of)
        if tenant is None:
            if limit is None or i + limit >= len(items):
                return items[i:]
            end = i + limit
            while end < len(items) and items[end].offset == items[end - 1].offset:
                end += 1
            return items[i:end]
        got: list[Item] = []
        for it in itertools.islice(items, i, None):
            if it.tenant == tenant or it.origin == tenant:
                if limit is not None and len(got) >= limit and it.offset != got[-1].offset:
                    break
                got.append(it)
        return got


class Subscriber:
    """A stream's end: outputs land in ``items``; ``wake`` is called after each batch."""

    def __init__(self, tenant: str | None, wake: Callable[[], None]) -> None:
        self.tenant = tenant
        self.items: deque[Item] = deque()
        self.wake = wake
        self.dropped = False

    def push(self, items: Sequence[Item]) -> None:
        if self.dropped:
            return
        t = self.tenant
        got = False
        for it in items:
            if t is None or it.tenant == t or it.origin == t:
                self.items.append(it)
                got = True
        if len(self.items) > MAX_BACKLOG:
            self.dropped = True
            self.items.clear()
            got = True
        if got:
            self.wake()


@dataclass
class Minute:
    """Per tenant (a chat's merchant: ``origin``, else ``tenant``) and per
    minute of event time, each chat counted once, in the minute of the output
    that counts it:

    - ``assigned``: chats answered, at their FIRST ``chat.assigned`` (a
      reassignment after a ``chat.requeued`` does not count again);
    - ``answered_in_sl``: of them, those whose first assignment's ``wait_ms``
      was at most 20 s;
    - ``abandoned``: chats whose ``chat.abandoned`` came before any
      ``chat.assigned`` (a chat answered, requeued, then left is answered).
    """

    assigned: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0


@dataclass
class TenantStats:
    minutes: dict[int, Minute] = field(default_factory=dict)
    last_ms: int = 0

    def minute(self, ts: int) -> Minute:
        if ts > self.last_ms:
            self.last_ms = ts
        m = ts // MINUTE_MS
        got = self.minutes.get(m)
        if got is None:
            got = self.minutes[m] = Minute()
            if len(self.minutes) > WINDOW_MINUTES * 2:
                cut = self.last_ms // MINUTE_MS - WINDOW_MINUTES
                for old in [x for x in self.minutes if x < cut]:
                    del self.minutes[old]
        return got

    def window(self) -> list[tuple[int, Minute]]:
        """The last hour, minute by minute (ending at the tenant's latest output)."""
        end = self.last_ms // MINUTE_MS
        return [(m * MINUTE_MS, self.minutes.get(m) or Minute())
                for m in range(end - WINDOW_MINUTES + 1, end + 1)]

    def totals(self) -> Minute:
        tot = Minute()
        for _, m in self.window():
            tot.assigned += m.assigned
            tot.answered_in_sl += m.answered_in_sl
            tot.abandoned += m.abandoned
        return tot


def service_level(m: Minute) -> float | None:
    """Chats answered within 20 s (at their first assignment) / (answered +
    abandoned before any answer); None: no such chat."""
    n = m.assigned + m.abandoned
    return m.answered_in_sl / n if n else None


def abandonment(m: Minute) -> float | None:
    """Chats abandoned before any answer / (answered + those abandoned);
    None: no such chat."""
    n = m.assigned + m.abandoned
    return m.abandoned / n if n else None


@dataclass
class Result:
    """What became of one posted line."""

    status: str  # accepted | duplicate | rejected
    offset: int
    error: str | None = None
    tenant: str = ""  # "" where the event names none (a clock for all, or a bad line)

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "offset": self.offset}
        if self.error is not None:
            d["error"] = self.error
        return d


class _FanOut:
    """The runtime's sink: outputs -> ``Item``s for the service."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def outputs(self, outputs: list[dict[str, Any]], data: bytes) -> None:
        self.service._take(outputs, data)


class Service:
    def __init__(self, rules: Rules, layout: StateLayout | None, *, rules_text: str = "",
                 checkpoint_every: int = 100_000, checkpoint_ms: int = 2_000,
                 history: int = DEFAULT_HISTORY,
                 on_output: Callable[[list[Item], list[dict[str, Any]]], None] | None = None,
                 ) -> None:
        self.layout = layout
        self.history = History()
        self.history_max = max(1, history)
        self.history_from = 0  # the history holds every output with offset >= this
        self.subscribers: set[Subscriber] = set()
        self.stats: dict[str, TenantStats] = {}
        #: recent final states: (tenant, chat) -> (ended | abandoned, event time)
        self.closed_chats: dict[tuple[str, str], tuple[str, int]] = {}
        #: chats answered (or requeued) and still open, oldest first: (origin
        #: or tenant, chat) -> None; forgotten when the chat ends (``_closed``)
        self.answered: dict[tuple[str, str], None] = {}
        self.on_output = on_output
        #: while a post with chat.ended / visitor.left applies: the chats its
        #: outputs name, (tenant, chat) -> visitor (see ``_ended``)
        self._batch_chats: dict[tuple[str, str], str | None] | None = None
        self._last: Cursor = (-1, -1)
        self._since_settle = 0
        #: the stored outputs are complete from this offset on (None: not kept, in memory)
        self.outputs_from: int | None = None
        self._out_batch: Any = None  # output segments waiting for their write
        self.read_stored = 0  # outputs read back from the stored ones (stream resumes)
        self.replayed = 0  # inputs re-applied to re-derive outputs older than outputs_from
        self.runtime = Runtime(rules, _FanOut(self), layout,
                               rules_text=rules_text, checkpoint_every=checkpoint_every,
                               checkpoint_ms=checkpoint_ms)
        self.started = time.time()

    # ----------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Restore from the state dir; outputs re-derived after its checkpoint
        go to the history (their numbers are those they had before)."""
        layout = self.layout
        if layout is not None:
            self.history_from = layout.applied
            store = layout.store
            frm, to = _int_or_none(store.get(S_OUT_FROM)), _int_or_none(store.get(S_OUT_TO))
            if frm is None or to is None or to < layout.applied:
                # a new state dir (0), one written before outputs were kept, or
                # one that ``routeq run`` went on with: complete from here on
                frm = layout.applied
            self.outputs_from = frm
            b = layout.start_batch()  # (the format marker goes first on a new dir)
            b.put(S_OUT_FROM, str(frm).encode())
            store.write(b)
        with paused_gc():
            self.runtime.resume()  # the outputs after the checkpoint, re-derived, are kept
        self._write_outputs()

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    @property
    def offset(self) -> int:
        """The next log offset."""
        return self.runtime.offset

    def idle(self) -> None:
        """Checkpoint if one is due, and settle the garbage now and then (call
        it between requests)."""
        self.runtime.idle()
        if self._since_settle >= FREEZE_EVERY:
            settle_garbage()
            self._since_settle = 0

    def recover(self, reopen: Callable[[], StateLayout]) -> None:
        """Go on after a write of the state failed (a full disk), once writes
        succeed again: the store is reopened (``reopen``) and the runtime
        restarts from its checkpoint and log as a new process would (the same
        engine: the log is written before anything is applied). Outputs
        already fanned out (offsets below the current one) are not emitted
        again; the stored outputs the failed write lost are written from the
        history. Raises (StoreError or the store's own) while writes still
        fail; call it again later."""
        emitted = self.runtime.offset
        if self.layout is not None:
            with contextlib.suppress(Exception):  # it says the write failed again
                self.layout.store.close()
        layout = reopen()
        self.layout = layout
        self._out_batch = None
        store = layout.store
        to = _int_or_none(store.get(S_OUT_TO))
        if to is not None and to < emitted:  # outputs of [to, emitted) are not stored
            b = store.batch()
            if self.history_from <= to:
                lost = [it for it in self.history if it.offset >= to]
                if lost:
                    b.put(OUTPUTS + pack_offset(lost[-1].offset),
                          b"\n".join(it.line for it in lost))
                b.put(S_OUT_TO, str(emitted).encode())
            else:  # no longer in memory: the stored outputs are complete from here
                self.outputs_from = emitted
                b.put(S_OUT_FROM, str(emitted).encode())
                b.put(S_OUT_TO, str(emitted).encode())
            store.write(b)
        old = self.runtime
        self.runtime = Runtime(old.rules, _FanOut(self), layout,
                               rules_text=old.rules_text,
                               checkpoint_every=old.checkpoint_every,
                               checkpoint_ms=round(old.checkpoint_s * 1000))
        with paused_gc():
            self.runtime.resume(emit_from=emitted)
        self._write_outputs()

    def close(self) -> None:
        """Checkpoint everything applied and drop the subscribers."""
        try:
            self.runtime.finish()
        finally:
            for s in list(self.subscribers):
                s.dropped = True
                s.wake()
            self.subscribers.clear()

    # ------------------------------------------------------------- ingest

    def submit(self, requests: Sequence[Sequence[bytes]],
               values: Sequence[Sequence[object] | None] | None = None) -> list[list[Result]]:
        """Log and apply the lines of several requests (in order) as one chunk.
        ``values``: per request, its lines' values (``parse_lines``) where the
        caller parsed them already, or None."""
        engine = self.runtime.engine
        first = self.runtime.offset
        lines = [line for req in requests for line in req]
        linenos = [i + 1 for req in requests for i in range(len(req))]
        given: list[object] | None = None
        if values is not None and any(v is not None for v in values):
            given = [x for req, v in zip(requests, values, strict=True)
                     for x in (v if v is not None else parse_lines(req))]
        # decoded once, here; the runtime takes them as they are
        decoded, bad = decode_lines(lines, given)
        results: list[list[Result]] = []
        seen: set[tuple[str | None, str]] = set()
        off = first
        for req in requests:
            res: list[Result] = []
            for _ in req:
                ev = decoded[off - first]
                if isinstance(ev, EventError):
                    res.append(Result("rejected", off, str(ev), ev.tenant or ""))
                else:
                    tenant = ev.get("tenant")
                    key = (tenant, ev["id"])
                    if views.seen(engine, tenant, ev["id"]) or key in seen:
                        res.append(Result("duplicate", off, None, tenant or ""))
                    else:
                        seen.add(key)
                        res.append(Result("accepted", off, None, tenant or ""))
                off += 1
            results.append(res)
        if lines:
            self._since_settle += len(lines)
            nbytes = sum(len(x) + 1 for x in lines)
            ending = self._ending(decoded, results)
            self._batch_chats = {} if ending else None
            try:
                self.runtime.feed(Chunk(lines, linenos, "-", 0, 0, nbytes, None, 0),
                                  (decoded, bad))
            finally:
                named, self._batch_chats = self._batch_chats, None
            self._ended(ending, named or {})
            self._write_outputs()
        return results

    def _ending(self, decoded: Sequence[Any], results: list[list[Result]],
                ) -> list[tuple[str, str | None, str | None, int, set[str]]]:
        """The accepted ``chat.ended`` / ``visitor.left`` events of a post:
        (tenant, chat, visitor, ts, the chats they name that are live now).
        No output says that a served chat ended: ``_ended`` checks, after the
        post applied, which of them (or of the chats the post's outputs
        showed) are gone."""
        found: list[tuple[str, str | None, str | None, int, set[str]]] = []
        flat = [r for res in results for r in res]
        for ev, r in zip(decoded, flat, strict=True):
            if r.status != "accepted" or isinstance(ev, EventError):
                continue
            typ = ev["type"]
            tenant = ev.get("tenant")
            if typ not in ("chat.ended", "visitor.left") or tenant is None:
                continue
            live: set[str] = set()
            if typ == "chat.ended":
                # one sent to the platform for a chat that overflowed to it
                # (``origin``) ends the chat its merchant holds, as its outputs
                # are keyed (the merchant's copy goes with the platform's)
                tenant = ev.get("origin") or tenant
                if views.is_open(self.engine, tenant, ev["chat"]):
                    live.add(ev["chat"])
                found.append((tenant, ev["chat"], None, ev["ts"], live))
            else:
                vid = ev["visitor"]
                live.update(views.visitor_chats(self.engine, tenant, vid))
                found.append((tenant, None, vid, ev["ts"], live))
        return found

    def _ended(self, ending: list[tuple[str, str | None, str | None, int, set[str]]],
               seen: dict[tuple[str, str], str | None]) -> None:
        """Record as ``ended`` the chats of ``ending`` that were live (before
        the post, or in its outputs ``seen``: (tenant, chat) -> visitor), are
        gone now, and that no output of the post said were abandoned."""
        for tenant, chat, visitor, ts, live in ending:
            if views.now(self.engine, tenant) is None:
                continue
            if chat is not None:
                names = set(live) | ({chat} if (tenant, chat) in seen else set())
            else:
                names = live | {c for (tn, c), v in seen.items()
                                if tn == tenant and v == visitor}
            for ch in names:
                if views.is_open(self.engine, tenant, ch):
                    continue  # still live
                had = self.closed_chats.get((tenant, ch))
                if had is not None and had[1] >= ts:
                    continue  # an output said how it ended (abandoned)
                self._closed(tenant, ch, "ended", ts)

    def _write_outputs(self) -> None:
        """Store the output segments taken since the last call, and how far the
        stored outputs reach (not synced by itself: a later synced write of
        the log carries it along; outputs lost with the process are re-derived
        from the checkpoint on restart)."""
        layout = self.layout
        if layout is None:
            return
        b = self._out_batch if self._out_batch is not None else layout.store.batch()
        self._out_batch = None
        b.put(S_OUT_TO, str(self.runtime.offset).encode())
        layout.store.write(b)

    # ------------------------------------------------------------ fan-out

    def _take(self, outs: list[dict[str, Any]], data: bytes) -> None:
        """A batch of the runtime's outputs and their JSON Lines ``data``."""
        items, last = numbered(_with_lines(outs, data), self._last)
        if not items:
            return
        self._last = last
        if self.layout is not None:  # one log segment's outputs, stored by _write_outputs
            if self._out_batch is None:
                self._out_batch = self.layout.store.batch()
            self._out_batch.put(OUTPUTS + pack_offset(last[0]), data)
        self._observe(outs)
        hist = self.history
        hist.extend(items)
        if len(hist) > self.history_max:
            while len(hist) > self.history_max:
                gone = hist.popleft()
            while hist and hist.first().offset == gone.offset:
                hist.popleft()
            self.history_from = gone.offset + 1
        for s in list(self.subscribers):
            s.push(items)
            if s.dropped:
                self.subscribers.discard(s)
        if self.on_output is not None:
            self.on_output(items, outs)

    def _observe(self, outs: list[dict[str, Any]]) -> None:
        """Count the outputs in the figures (``Minute``: a chat once, by the
        first ``chat.assigned`` or a ``chat.abandoned`` before any)."""
        batch = self._batch_chats
        answered = self.answered
        for o in outs:
            typ = o["type"]
            tenant = o.get("origin") or o.get("tenant", "")
            if batch is not None and "chat" in o:
                batch[(tenant, o["chat"])] = o.get("visitor")
            if typ == "chat.assigned":
                m = self._stats(tenant).minute(o["ts"])
                key = (tenant, o["chat"])
                if key not in answered:  # its first answer (else a reassignment)
                    self._answered(key)
                    m.assigned += 1
                    if o.get("wait_ms", 0) <= SERVICE_LEVEL_MS:
                        m.answered_in_sl += 1
            elif typ == "chat.abandoned":
                m = self._stats(tenant).minute(o["ts"])
                if (tenant, o["chat"]) not in answered:  # else it was answered
                    m.abandoned += 1
                self._closed(tenant, o["chat"], "abandoned", o["ts"])
            elif typ == "chat.requeued":
                self._stats(tenant).minute(o["ts"])
                # a requeued chat was answered: known so even where its first
                # chat.assigned came before the checkpoint a restart resumed from
                self._answered((tenant, o["chat"]))
            elif typ in ("chat.queued", "chat.to_bot"):
                self._stats(tenant).minute(o["ts"])

    def _answered(self, key: tuple[str, str]) -> None:
        """Remember that chat ``key`` was answered (until it ends)."""
        if key in self.answered:
            return
        self.answered[key] = None
        if len(self.answered) > ANSWERED_KEPT:  # the oldest go, a tenth at a time
            for old in list(itertools.islice(self.answered, ANSWERED_KEPT // 10)):
                del self.answered[old]

    def _stats(self, tenant: str) -> TenantStats:
        s = self.stats.get(tenant)
        if s is None:
            s = self.stats[tenant] = TenantStats()
        return s

    def _closed(self, tenant: str, chat: str, state: str, ts: int) -> None:
        """The chat ended (``ended`` or ``abandoned``): ``chat_view`` answers
        for it a while; the figures forget it."""
        self.answered.pop((tenant, chat), None)
        self.closed_chats.pop((tenant, chat), None)  # (the newest last)
        self.closed_chats[(tenant, chat)] = (state, ts)
        if len(self.closed_chats) > CLOSED_KEPT:  # the oldest go, a tenth at a time
            for key in list(itertools.islice(self.closed_chats, CLOSED_KEPT // 10)):
                del self.closed_chats[key]

    def subscribe(self, tenant: str | None, wake: Callable[[], None]) -> Subscriber:
        s = Subscriber(tenant, wake)
        self.subscribers.add(s)
        return s

    def unsubscribe(self, s: Subscriber) -> None:
        self.subscribers.discard(s)

    def recent(self, after: Cursor, tenant: str | None,
               limit: int | None = None) -> tuple[list[Item], int]:
        """Kept outputs after ``after`` visible to ``tenant`` (``limit`` at
        most), and the offset from which the history is complete (outputs
        below it need ``read_range``)."""
        return self.history.page(after, tenant, limit), self.history_from

    def read_range(self, after: Cursor, below: int, tenant: str | None,
                   limit: int = 10_000) -> tuple[list[Item], Cursor | None]:
        """Outputs after ``after`` with offset < ``below`` visible to ``tenant``,
        the same bytes the live run emitted, about ``limit`` at most (whole
        segments: all the outputs of an offset come together), and the cursor
        to read on from (None: nothing is left below ``below``).

        From the stored outputs, starting at the segment that holds ``after``,
        where they reach back that far; before that, re-derived by replaying
        the log from offset 0 (all at once). Safe in a worker thread.
        """
        layout = self.layout
        if layout is None or below <= after[0]:
            return [], None
        start = max(after[0], 0)
        if self.outputs_from is None or start < self.outputs_from:
            return self.replay_range(after, below, tenant), None
        items: list[Item] = []
        scanned = taken = 0  # outputs read; of them, after ``after``
        last: Cursor = (-1, -1)
        # keyed by the offset of a segment's last output: the first key at or
        # after ``start`` is the segment that holds ``start`` (or the next one)
        for _, data in layout.store.items(OUTPUTS, pack_offset(start)):
            segment, last = numbered(_parsed(data), last)
            for it in segment:
                if it.offset >= below:
                    self.read_stored += scanned
                    return items, None
                scanned += 1
                if it.cursor > after:
                    taken += 1
                    if it.visible_to(tenant):
                        items.append(it)
            if taken >= limit:
                self.read_stored += scanned
                return items, last
        self.read_stored += scanned
        return items, None

    def replay_range(self, after: Cursor, below: int, tenant: str | None) -> list[Item]:
        """Outputs after ``after`` with offset < ``below``, re-derived by
        replaying the log from offset 0 (the same bytes the live run emitted).
        Safe in a worker thread."""
        if self.layout is None or below <= after[0]:
            return []
        collected = _Collect(after, below, tenant)
        rt = Runtime(self.runtime.rules, collected)
        with contextlib.suppress(_Enough):
            rt.replay(self.layout)
        self.replayed += rt.offset
        return collected.items

    # ----------------------------------------------------------- webhooks

    def webhook_position(self, tenant: str) -> Cursor | None:
        """The last output the tenant's webhook receiver acknowledged, as
        stored (None: never stored, or no state dir)."""
        if self.layout is None:
            return None
        raw = self.layout.store.get(WEBHOOK + tenant.encode())
        return parse_cursor(raw.decode()) if raw else None

    def save_webhook_position(self, tenant: str, cursor: Cursor) -> None:
        """Store (durably, with the state's log) how far the receiver has acknowledged."""
        if self.layout is None:
            return
        b = self.layout.store.batch()
        b.put(WEBHOOK + tenant.encode(), format_cursor(cursor).encode())
        self.layout.store.write(b)

    # -------------------------------------------------------------- views

    def tenants(self) -> list[str]:
        return views.tenants(self.engine)

    def chat_view(self, tenant: str, chat: str) -> dict[str, Any] | None:
        view = views.chat(self.engine, tenant, chat)
        if view is None:
            closed = self.closed_chats.get((tenant, chat))
            if closed is None:
                return None
            return {"tenant": tenant, "chat": chat, "state": closed[0], "ended_ms": closed[1]}
        return view

    def queue_view(self, name: str, limit: int = 1000) -> dict[str, Any]:
        found = views.queue_rows(self.engine, name)
        if found is None:
            return {"tenant": name, "length": 0, "chats": []}
        now, rows = found
        return {"tenant": name, "now": now, "length": len(rows), "chats": rows[:limit]}

    def agents_view(self, name: str) -> dict[str, Any]:
        found = views.agent_rows(self.engine, name)
        if found is None:
            return {"tenant": name, "agents": []}
        now, rows = found
        return {"tenant": name, "now": now, "agents": rows}

    def tenant_summary(self, name: str) -> dict[str, Any]:
        """The dashboard's numbers for one tenant."""
        ts = views.tenant_state(self.engine, name) or {
            "now": 0, "queue": 0, "waiting_by_page": {}, "bots": 0, "agents": [], "held": 0,
            "capacity": 0}
        st = self.stats.get(name) or TenantStats()
        tot = st.totals()
        series = [{"t": ms, "service_level": service_level(m), "abandonment": abandonment(m),
                   "assigned": m.assigned, "abandoned": m.abandoned}
                  for ms, m in st.window()] if st.last_ms else []
        cap = ts["capacity"]
        return {
            "tenant": name, "now": ts["now"], "queue": ts["queue"],
            "waiting_by_page": dict(sorted(ts["waiting_by_page"].items())),
            "bots": ts["bots"], "agents": ts["agents"],
            "occupancy": ts["held"] / cap if cap else None,
            "service_level": service_level(tot), "abandonment": abandonment(tot),
            "series": series,
        }

    def gauges(self) -> Iterator[tuple[str, int, int, int, int]]:
        """(tenant, waiting, online agents, chats held by online agents, their capacity)."""
        return views.gauges(self.engine)


class _Enough(Exception):
    pass


class _Collect:
    def __init__(self, after: Cursor, below: int, tenant: str | None) -> None:
        self.after = after
        self.below = below
        self.tenant = tenant
        self.items: list[Item] = []
        self._last: Cursor = (-1, -1)

    def outputs(self, outputs: list[dict[str, Any]], data: bytes) -> None:
        items, self._last = numbered(_with_lines(outputs, data), self._last)
        for it in items:
            if it.offset >= self.below:
                raise _Enough
            if it.cursor > self.after and it.visible_to(self.tenant):
                self.items.append(it)


def _int_or_none(raw: bytes | None) -> int | None:
    return int(raw) if raw else None
