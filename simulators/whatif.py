"""Trace-driven what-if: a recorded history re-simulated under other rules.

Reading a trace (:func:`read_trace`): the trace's input events are replayed
once through the engine under the rules they were recorded with, which gives
back every decision (when each chat was queued, offered, assigned, sent to the
bot). Each event is then sorted into one of two kinds:

- **exogenous**, kept as recorded (time and content): agent state changes,
  visitor arrivals, page views, chat requests, orders that no chat led to,
  and a visitor leaving while they had no open chat;
- **endogenous**, dropped and re-created by the re-simulation, because under
  other rules they would happen at other times or not at all: acceptances and
  declines of offers, chat ends, ``bot.escalated``, a visitor leaving while
  their chat waited (that is their patience running out), the order a visitor
  placed after a chat an agent served, and ``clock`` events.

From the endogenous events each chat keeps what was observed about it:

- its **handle time** (from the assignment, or the acceptance when offers were
  confirmed, to the end) where an agent served it; for a chat nobody served,
  a handle time drawn from the served chats of the same page;
- the visitor's **patience**: observed exactly where they gave up; where they
  were served after waiting ``w`` it is only known to be longer than ``w``
  (censored), so the rest is drawn from an exponential model fitted to all of
  them (mean = total time chats were exposed to waiting / number who gave up;
  by memorylessness, patience = ``w`` + a fresh draw);
- how each offer was answered (accepted after a delay, declined, left to time
  out), replayed on the chat's offers in order; later offers are accepted
  after the chat's last observed delay;
- where an agent gave a chat back during its service (transferred it, or
  declined it after accepting it): how long the service had run, replayed on
  the same service;
- what the bot did (resolved, ended or escalated after a delay);
- whether an order followed. The chance of an order after a served chat is
  modelled as ``p(page) * exp(-wait / tau)``, fitted to the trace by maximum
  likelihood (``tau`` on a grid). Each chat gets a uniform number coupled to
  what was observed (below ``p·exp(-w/tau)`` where an order followed, above
  where none did), so a shorter wait can win an order and a longer one lose
  it, and the trace's own rules give its orders back exactly. The amount and
  the delay after the chat are the observed ones, or drawn from the trace.

Re-simulating (:func:`run_candidate`): the exogenous events are fed in their
recorded order, merged by time with a heap of endogenous actions scheduled
from the candidate engine's own outputs, exactly as the closed-loop simulator
does; ``clock`` events fire the engine's timers on time. Every draw for a
chat comes from a ``random.Random`` seeded by (seed, tenant, chat), so every
candidate sees the same patience, handle time and order luck for the same
chat (common random numbers), and the result does not depend on which
process ran it.

Limits (also in the README): a visitor's clicks after a chat keep their
recorded times even if the chat now ends earlier or later; handle time does
not depend on which agent takes the chat; declines are tied to the chat's
n-th offer, not to the agent; patience is one exponential model for everyone.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import random
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from engine import Engine, Rules, views
from schemas.events import EventError, decode
from simulators.simulation import relaxed_gc
from simulators.whatif_metrics import Figures

ATTRIBUTION_MS = 3_600_000
SERVER_CLOCK = "serve-clock-"  # the ids of routeq serve's clock events
SERVER_TICK_MS = 1_250  # serve's default --clock-ms, and its ticker's polling
TICK = 16_384  # exogenous events between progress reports
TAU_GRID_S = (15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 360.0, 600.0, 1200.0,
              3600.0, math.inf)

# chat states, as the reader and the re-simulation know them from outputs
NEW, BOT, WAITING, ASSIGNED, CLOSED = range(5)
# what the reader does with an input event (``_Reader.classify``)
DROP, KEEP = range(2)
LAST = 2**62  # at equal times after the events planned at a line of the history
#: the times of a tenant (grouped: of all) whose ties the reader keeps counting:
#: where one tenant is behind another their times interleave, and a time seen
#: again within this many others (at least) continues its tie
TIE_TIMES = 64
#: the outputs about a chat that the reader and the re-simulation follow
CHAT_OUTPUTS = frozenset({"chat.queued", "chat.assigned", "chat.requeued", "chat.to_bot",
                          "chat.abandoned"})
_V = TypeVar("_V")
# what a planned step does (see Replay._act), the commonest first
END, ACCEPT, CLOCK, GIVE_UP, DECLINE, GIVE_BACK, BOT_DONE, ORDER = range(8)
#: a planned step: (time, line of the history it re-creates, order planned,
#: tenant, what, its argument)
_Item = tuple[int, int, int, str, int, Any]


class TraceError(ValueError):
    """A trace that cannot be re-simulated (the message says why)."""


class Obs:
    """What the trace shows about one chat."""

    __slots__ = ("tenant", "chat", "visitor", "page", "t_req", "entered", "status", "human",
                 "wait_ms", "handle_ms", "start_t", "offers", "offer_t", "patience_ms",
                 "abandon", "end", "bot", "bot_t", "order", "end_t", "open_ms",
                 "survived_ms", "assignments", "cuts", "given_back", "agent", "close")

    def __init__(self, tenant: str, chat: str, visitor: str, page: str | None, t: int) -> None:
        self.tenant = tenant
        self.chat = chat
        self.visitor = visitor
        self.page = page
        self.t_req = t
        self.entered = t
        self.status = NEW
        self.human = False
        self.wait_ms = -1  # first wait for a human (the censoring point of patience)
        self.handle_ms = -1
        self.start_t = -1  # when the current agent started on it
        self.offers: list[tuple[str, int]] = []  # ("accept"|"decline"|"none", delay ms)
        self.offer_t = -1  # an offer awaiting its answer
        self.patience_ms = -1  # observed where the visitor gave up
        self.abandon = "visitor.left"  # how they gave up
        self.end: tuple[str, bool] = ("chat.ended", True)  # how a served chat ended
        self.bot: tuple[str, int, bool] | None = None  # (escalate|end|left, delay, resolved)
        self.bot_t = -1
        self.order: tuple[int, float] | None = None  # (delay after the end, amount)
        self.end_t = -1
        # still open at the end of the trace: how long it had been in its state
        # (waiting, held or with the bot) then; what it would do next is later
        self.open_ms = -1
        # the longest it was seen waiting without giving up (from entering the
        # queue to its last assignment): its patience is longer than that
        self.survived_ms = -1
        self.assignments = 0  # chat.assigned so far
        # n -> how long the service begun by the n-th assignment had run when its
        # agent went away or offline (it was cut, not ended: longer than that)
        self.cuts: dict[int, int] = {}
        # n -> (how long the service begun by the n-th assignment ran before its
        # agent gave the chat back: the input that did (chat.transferred, to
        # whom, to which skill; or chat.declined after accepting it))
        self.given_back: dict[int, tuple[int, str, str | None, str | None]] = {}
        self.agent = ""  # who holds it, or has it offered, now
        # (time, line) of the event that closed it in the history: at equal
        # times the re-simulation closes chats in that order
        self.close = (-1, -1)

    def waited_ms(self) -> int:
        """The longest the visitor was seen waiting without giving up: to the
        chat's last assignment, or to the end of the history where it still
        waited then (-1: never seen waiting)."""
        return max(self.survived_ms, self.open_ms if self.status == WAITING else -1)


@dataclass
class Trace:
    """A trace read for re-simulation; ``exo`` is a file of the exogenous events,
    validated and decoded (defaults filled in), one JSON object a line, so that
    each candidate reads them with ``orjson.loads`` alone."""

    path: str
    rules: Rules
    exo: str
    chats: dict[tuple[str, str], Obs]
    events: int
    exo_events: int
    rejected: int
    t0: int
    t1: int  # the end of the report's time axis (at least a minute after t0)
    t_end: int  # the last event's time: the re-simulation stops there, as the trace did
    acceptance: bool  # offers were confirmed (chat.accepted) in the trace
    patience_mean_ms: float  # inf: nobody gave up
    handle_pool: dict[str, list[int]]
    accept_pool: list[int]
    bot_pool: list[tuple[str, int, bool]]
    order_p: dict[str, float]
    order_tau_ms: float
    amount_pool: dict[str, list[float]]
    delay_pool: list[int]
    # page -> (ms its chats were exposed to waiting, visitors who gave up): the
    # patience estimate by page, as patience_mean_ms is over all
    exposure_by_page: dict[str, tuple[int, int]] = field(default_factory=dict)
    recorded: dict[str, Any] = field(default_factory=dict)  # metrics of the trace as recorded
    read_s: float = 0.0
    # rules deployed during the history: (exogenous events before it, the time
    # of the last event before it, rules); the recorded rules switch there
    deployments: list[tuple[int, int, Rules]] = field(default_factory=list)
    # exogenous event index -> (the tie's number, how many events the
    # re-simulation re-creates came at that same time before it in the
    # history: the order of a tie); a tie is the events of one time of a
    # tenant (grouped: of all tenants, whose times interleave where one is
    # behind another), numbered when first seen (see TIE_TIMES)
    ties: dict[int, tuple[int, int]] = field(default_factory=dict)
    # exogenous event index -> tenant -> an earlier time than its own: the
    # tenant's later events come at that time (its clock is behind another's),
    # so its own events in the re-simulation go first only where earlier
    behind: dict[int, dict[str, int]] = field(default_factory=dict)
    grouped: bool = False  # chats may overflow: ties count over all tenants
    tenants: tuple[str, ...] = ()  # the figures cover these tenants (none named: all)
    # what the history holds that the closed-loop simulator does not do by
    # itself (counts; the null test names them as likely causes)
    seen: dict[str, int] = field(default_factory=dict)
    # where the history came with its outputs: the events whose recorded outputs
    # the rules do not decide, and the first of them in words (None: not checked)
    unexplained: tuple[int, int, str] | None = None  # (events differing, checked, first)
    declines: bool = False  # some offer was declined (chat.declined) in the trace
    # how late its timers fired after their deadline: 0 on time (a simulation's
    # clock events, re-created), > 0 a server's clock ticks (kept, and the own
    # clocks that much late), -1 only at the next event or a clock event (kept)
    timer_lag_ms: int = 0

    def model(self) -> dict[str, Any]:
        """The fitted models, for the report."""
        served = sum(1 for o in self.chats.values() if o.handle_ms >= 0)
        gave_up = sum(1 for o in self.chats.values() if o.patience_ms >= 0)
        return {
            "chats": len(self.chats), "served": served, "gave_up": gave_up,
            "patience_mean_s": (None if math.isinf(self.patience_mean_ms)
                                else round(self.patience_mean_ms / 1000, 1)),
            "handle_mean_s": _mean_s([h for hs in self.handle_pool.values() for h in hs]),
            "order_p": {p: round(v, 4) for p, v in sorted(self.order_p.items())},
            "order_tau_s": None if math.isinf(self.order_tau_ms) else self.order_tau_ms / 1000,
            "acceptance": self.acceptance,
        }


def _mean_s(xs: list[int]) -> float | None:
    return round(sum(xs) / len(xs) / 1000, 1) if xs else None


def trace_files(path: str) -> tuple[Path, Path | None]:
    """The events file of a trace (a file, or a directory holding events.jsonl) and the
    rules it was recorded with where the directory has them (``rules.toml``)."""
    p = Path(path)
    if p.is_dir():
        ev = p / "events.jsonl"
        if not ev.is_file():
            raise TraceError(f"trace directory {path} has no events.jsonl")
        rules = p / "rules.toml"
        return ev, rules if rules.is_file() else None
    if not p.exists():
        raise TraceError(f"trace not found: {path}")
    return p, None


def _ts(line: bytes) -> int | None:
    try:
        return int(decode(line)["ts"])
    except EventError:
        return None


def _span(path: Path) -> tuple[int, int] | None:
    """(first, last) event time of a trace: the first valid line's ``ts`` and the
    largest ``ts`` among the last valid lines (the report's time axis)."""
    first = None
    for line in _lines(path):
        first = _ts(line)
        if first is not None:
            break
    if first is None:
        return None
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - (1 << 16)))
        tail = f.read().splitlines()[1:] if size > (1 << 16) else f.read().splitlines()
    last = first
    for line in tail:
        if line.strip():
            t = _ts(line.rstrip(b"\r"))
            if t is not None and t > last:
                last = t
    return first, max(last, first + 60_000)


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line


# ---------------------------------------------------------------- reading

class _Reader:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.engine = Engine(rules, track_changes=False)
        self.chats: dict[tuple[str, str], Obs] = {}  # (tenant, chat) -> its latest
        self.kept: dict[tuple[str, str], Obs] = {}  # every chat, by incarnation()
        self.again: dict[tuple[str, str], int] = {}  # (tenant, chat) -> requested again
        self.pages: dict[tuple[str, str], str] = {}
        self.open: dict[tuple[str, str], list[Obs]] = {}  # (tenant, visitor) -> open chats
        self.last: dict[tuple[str, str], Obs] = {}  # (tenant, visitor) -> latest chat
        self.acceptance = False
        self.declines = False  # (declines requeue a chat whether or not offers need accepting)
        self.now = 0  # the time of the event being read
        self.lateness: list[int] = []  # of clock events after a deadline due, ms
        self.on_time = 0  # clock events at the deadline due (a simulation's)
        self.late_own = 0  # a tenant's own clock events after a deadline due
        self.seen: dict[str, int] = {}
        self.line = -1  # the history's line being read

    def classify(self, ev: dict[str, Any]) -> int:
        """Record what ``ev`` shows: KEEP where it is exogenous (kept as recorded),
        DROP where the re-simulation re-creates it. An event that changed nothing
        but the time (an answer to no offer, the end of an ended chat, an
        escalation of a chat not with the bot) is kept: it may have fired timers,
        of its tenant or of the platform a chat it names overflowed to."""
        typ = ev["type"]
        tenant = ev.get("tenant", "")
        ts = self.now = ev["ts"]
        o: Obs | None
        if typ == "page.viewed":
            self.pages[(tenant, ev["visitor"])] = ev["page"]
            return KEEP
        if typ == "chat.requested":
            key = (tenant, ev["chat"])
            was = self.chats.get(key)
            if was is None or was.status == CLOSED:  # (a retry while it is open: nothing)
                # an id requested again after its chat ended is a new chat
                n = self.again[key] = self.again.get(key, -1) + 1
                vkey = (tenant, ev["visitor"])
                o = self.chats[key] = Obs(tenant, ev["chat"], ev["visitor"],
                                          self.pages.get(vkey), ts)
                self.kept[incarnation(key, n)] = o
                self.open.setdefault(vkey, []).append(o)
                self.last[vkey] = o
            return KEEP
        if typ == "clock":
            # kept; how late clocks came after the deadline due says how the
            # history's timers fired (timer_lag_ms)
            if str(ev["id"]).startswith(SERVER_CLOCK):
                self._count("timer ticks from the server's clock")
            due = self.engine.next_deadline(ev.get("tenant"))
            if due is not None and ts > due:
                if "tenant" in ev:
                    self.late_own += 1
                else:  # a server's clock, for every tenant
                    self.lateness.append(ts - due)
            elif due == ts:
                self.on_time += 1
            return KEEP
        if typ in ("chat.accepted", "chat.declined"):
            o = self.chats.get((tenant, ev["chat"]))
            # an answer from an agent the chat is not offered to changes nothing
            if o is not None and o.offer_t >= 0 and ev["agent"] == o.agent:
                if typ == "chat.accepted":
                    self.acceptance = True
                    o.offers.append(("accept", ts - o.offer_t))
                    o.start_t = ts
                else:
                    o.offers.append(("decline", ts - o.offer_t))
                    self._count("declined offers")
                    self.declines = True
                o.offer_t = -1
                return DROP
            if (typ == "chat.declined" and o is not None and o.status == ASSIGNED
                    and ev["agent"] == o.agent):
                # declined after accepting it: the agent gives it back mid-chat
                self._count("chats given back after being accepted")
                o.given_back[o.assignments - 1] = (ts - o.start_t, typ, None, None)
                return DROP
            self._count("events that changed nothing (kept for their time)")
            return KEEP
        if typ == "chat.transferred":
            o = self.chats.get((tenant, ev["chat"]))
            # only the agent holding a chat hands it on
            if o is not None and o.status == ASSIGNED and ev["agent"] == o.agent:
                self._count("chats transferred")
                if o.offer_t >= 0:  # handed on before any answer to the offer
                    o.offers.append(("transfer", ts - o.offer_t))
                    o.offer_t = -1
                o.given_back[o.assignments - 1] = (ts - o.start_t, typ, ev.get("to_agent"),
                                                   ev.get("to_skill"))
                return DROP
            self._count("events that changed nothing (kept for their time)")
            return KEEP
        if typ == "bot.escalated":
            o = self.chats.get((tenant, ev["chat"]))
            view = (views.chat(self.engine, tenant, ev["chat"])
                    if o is not None and o.status == BOT else None)
            # (a robot_only chat stays with the bot: the escalation changes nothing)
            if o is not None and view is not None and view.get("mode") != "robot_only":
                o.bot = ("escalate", ts - o.bot_t, False)
                o.entered = ts
                return DROP
            self._count("events that changed nothing (kept for their time)")
            return KEEP
        if typ == "chat.ended":
            o = self.chats.get((tenant, ev["chat"]))
            if o is not None and o.status != CLOSED:
                self._end(o, ts, ("chat.ended", bool(ev.get("resolved", False))))
                return DROP
            self._count("events that changed nothing (kept for their time)")
            return KEEP
        if typ == "visitor.left":
            # the engine ends every open chat of the visitor; the leaving is
            # the visitor's patience or the end of a chat where one was open
            ended = [o for o in self.open.get((tenant, ev["visitor"]), ())
                     if o.status not in (CLOSED, NEW)]
            if len(ended) > 1:
                self._count("visitors leaving with several chats open")
            for o in ended:
                self._end(o, ts, ("visitor.left", False))
            return DROP if ended else KEEP
        if typ == "order.placed":
            o = self.last.get((tenant, ev["visitor"]))
            if (o is not None and o.status == CLOSED and o.handle_ms >= 0 and o.order is None
                    and ts >= o.end_t and ts - o.t_req <= ATTRIBUTION_MS):
                o.order = (ts - o.end_t, float(ev["amount"]))
                return DROP
            return KEEP
        return KEEP

    def _count(self, what: str) -> None:
        self.seen[what] = self.seen.get(what, 0) + 1

    def _end(self, o: Obs, ts: int, how: tuple[str, bool]) -> None:
        o.close = (ts, self.line)
        if o.status == ASSIGNED:
            if how[0] == "visitor.left":
                self._count("visitors leaving in the middle of a chat")
            if o.offer_t >= 0:  # it ended while offered, before any answer
                if self.engine.rules.acceptance_required:
                    self._count("chats ended while offered")
                o.offers.append(("end", ts - o.offer_t))
                o.offer_t = -1
            o.handle_ms = ts - (o.start_t if o.start_t >= 0 else ts)
            o.end = how
            o.end_t = ts
        elif o.status == WAITING:
            o.patience_ms = ts - o.entered
            o.abandon = how[0]
            if how[0] == "chat.ended":
                self._count("waiting chats ended by an agent")
        elif o.status == BOT:
            o.bot = ("end" if how[0] == "chat.ended" else "left", ts - o.bot_t, how[1])
        o.status = CLOSED
        vkey = (o.tenant, o.visitor)
        opened = self.open.get(vkey)
        if opened is not None and o in opened:
            opened.remove(o)
            if not opened:
                del self.open[vkey]

    def censor(self, t_end: int) -> None:
        """The chats still open when the trace ends: their patience, handle time
        or time with the bot is only known to be longer than what they had had."""
        for opened in self.open.values():
            for o in opened:
                if o.status in (WAITING, ASSIGNED, BOT):
                    self._count("chats open at the end")
                if o.status == WAITING:
                    o.open_ms = t_end - o.entered
                elif o.status == ASSIGNED:
                    if o.offer_t >= 0:
                        o.offers.append(("none", 0))  # unanswered when the trace ends
                        o.offer_t = -1
                    o.open_ms = t_end - o.start_t
                elif o.status == BOT:
                    o.open_ms = t_end - o.bot_t

    def output(self, out: dict[str, Any]) -> None:
        otype = out["type"]
        if otype not in CHAT_OUTPUTS:
            return
        o = self.chats.get((out.get("origin") or out["tenant"], out["chat"]))
        if o is None:
            return
        # a chain, not a table of bound methods (see Engine._handle)
        if otype == "chat.assigned":
            self._assigned(o, out)
        elif otype == "chat.queued":
            self._queued(o, out)
        elif otype == "chat.requeued":
            self._requeued(o, out)
        elif otype == "chat.to_bot":
            self._to_bot(o, out)
        else:
            self._abandoned(o, out)

    def _queued(self, o: Obs, out: dict[str, Any]) -> None:
        if o.status == CLOSED:
            return
        o.status = WAITING
        o.human = True

    def _assigned(self, o: Obs, out: dict[str, Any]) -> None:
        ts = out["ts"]
        o.human = True
        o.status = ASSIGNED
        o.offer_t = ts
        o.start_t = ts
        if o.wait_ms < 0:
            o.wait_ms = ts - o.entered
        # (a timer's assignment is stamped with its deadline; the visitor was
        # still there at the event that fired it)
        o.survived_ms = max(o.survived_ms, max(ts, self.now) - o.entered)
        o.assignments += 1
        o.agent = out["agent"]

    def _requeued(self, o: Obs, out: dict[str, Any]) -> None:
        if out.get("why") in ("agent_away", "agent_offline"):
            self._count("chats requeued by an agent going away or offline")
            if o.start_t >= 0:
                # (a timer's requeue is stamped with its deadline; the agent
                # held the chat until the event that fired it)
                o.cuts[o.assignments - 1] = max(out["ts"], self.now) - o.start_t
        if o.offer_t >= 0:  # an offer left without an answer: its place in the list
            if out.get("why") == "offer_timeout":
                self._count("offers timed out")
            o.offers.append(("none", 0))
        o.offer_t = -1
        o.start_t = -1
        if o.status != CLOSED:
            o.status = WAITING

    def _to_bot(self, o: Obs, out: dict[str, Any]) -> None:
        o.status = BOT
        o.bot_t = out["ts"]

    def _abandoned(self, o: Obs, out: dict[str, Any]) -> None:
        if o.status == WAITING and o.patience_ms < 0:
            o.patience_ms = out["ts"] - o.entered
        o.status = CLOSED


def read_trace(path: str, rules: Rules, workdir: str | None = None, *,
               deployments: list[tuple[int, Rules]] | None = None,
               tenants: tuple[str, ...] = (), outputs: str | None = None,
               simulated: bool | None = None) -> Trace:
    """Read a trace (see the module doc); raises :class:`TraceError` for one that
    cannot be re-simulated (empty, no chats).

    ``rules`` are those in force at its first line; ``deployments`` (line
    index, rules) those deployed later, in order (a state dir's history);
    ``tenants`` restricts the figures to those tenants; ``outputs`` is a file
    of the outputs the history recorded (JSON Lines with their ``offset``), checked
    against those the rules decide (``Trace.unexplained``); ``simulated``: the
    history comes from ``routeq simulate`` (None: where a ``summary.json`` lies
    beside it), whose clock events fire the timers at their deadlines."""
    with relaxed_gc():
        return _read(path, rules, workdir, deployments, tenants, outputs, simulated)


def _read(path: str, rules: Rules, workdir: str | None,
          deployments: list[tuple[int, Rules]] | None, tenants: tuple[str, ...],
          outputs: str | None, simulated: bool | None) -> Trace:
    started = time.perf_counter()
    events_path, _ = trace_files(path)
    reader = _Reader(rules)
    engine = reader.engine
    span = _span(events_path)
    if span is None:
        raise TraceError(f"trace {path} is empty: no valid events")
    col = Figures(t0=span[0], t1=span[1], wrap_up_ms=rules.wrap_up_ms, tenants=tenants)
    switches = list(deployments or [])
    recorded_outs = _RecordedOutputs(outputs) if outputs is not None else None
    switched: list[tuple[int, int, Rules]] = []
    line_no = -1
    fd, exo_path = tempfile.mkstemp(prefix="routeq-whatif-", suffix=".jsonl", dir=workdir)
    events = exo_n = rejected = duplicates = 0
    t_end = span[0]
    # per tenant (all as one, None, where chats may overflow), its latest
    # times at which the re-simulation re-creates events (TIE_TIMES of them
    # at least), each with how many it re-creates there, how many clock events
    # (which it re-creates where on time), and the tie's number
    at_ts: dict[str | None, dict[int, list[int]]] = {}
    n_ties = 0
    ran_under = (rules, *(d[1] for d in deployments or ()))
    grouped = any(r.overflow_enabled for r in ran_under)
    last_ts = -1
    ties: dict[int, tuple[int, int]] = {}
    ties_clocks: dict[int, tuple[int, int]] = {}
    exo_ts = array("q")  # each kept event's time, and its tenant's number
    exo_tenant = array("i")
    numbers: dict[str | None, int] = {None: -1}
    bufs: list[bytes] = []
    try:
        with os.fdopen(fd, "wb") as exo:
            for line in _lines(events_path):
                line_no += 1
                while switches and switches[0][0] <= line_no:
                    new = switches.pop(0)[1]
                    engine = reader.engine = Engine.restore(new, engine.snapshot(),
                                                            track_changes=False)
                    switched.append((exo_n, last_ts, new))
                try:
                    ev = decode(line)
                except EventError:
                    rejected += 1
                    continue
                tenant = ev.get("tenant")
                if views.seen(engine, tenant, ev["id"]):
                    duplicates += 1  # the engine ignores it: so does the history
                    continue
                # a late event applies at its tenant's time (CONTRACT.md section 3)
                now = views.now(engine, tenant) if tenant is not None else None
                if now is not None and ev["ts"] < now:
                    ev["ts"] = now
                offset = line_no
                events += 1
                ts = ev["ts"]
                if ts > t_end:
                    t_end = ts
                last_ts = ts
                group = None if grouped else tenant
                times = at_ts.get(group)
                if times is None:
                    times = at_ts[group] = {}
                tie = times.get(ts)
                clock = ev["type"] == "clock"
                due = engine.next_deadline(tenant) if clock else None
                reader.line = line_no
                keep = reader.classify(ev)
                # decoded, as it was before the engine saw it: no candidate checks it again
                kept = orjson.dumps(ev) if keep else b""
                # only a clock that fires a timer is re-created where on time
                fires = clock and due is not None and due <= ts
                if keep == DROP or fires:
                    if tie is None:
                        n_ties += 1
                        tie = times[ts] = [0, 0, n_ties]
                        at_ts[group] = _latest(times, TIE_TIMES)
                    tie[0 if keep == DROP else 1] += 1
                elif not clock and tie is not None:
                    if tie[0]:
                        ties[exo_n] = (tie[2], tie[0])
                    if tie[0] + tie[1]:
                        ties_clocks[exo_n] = (tie[2], tie[0] + tie[1])
                outs = engine.apply(ev, offset)
                if recorded_outs is not None:
                    recorded_outs.check(offset, outs)
                col.event(ev)
                for o in outs:
                    col.output(o)
                    reader.output(o)
                if keep:
                    exo_n += 1
                    exo_ts.append(ts)
                    exo_tenant.append(numbers.setdefault(tenant, len(numbers) - 1))
                    bufs.append(kept)
                    if len(bufs) >= 8192:
                        exo.write(b"\n".join(bufs) + b"\n")
                        bufs.clear()
            if bufs:
                exo.write(b"\n".join(bufs) + b"\n")
    except BaseException:
        os.unlink(exo_path)
        raise
    if events == 0:
        os.unlink(exo_path)
        raise TraceError(f"trace {path} is empty: no valid events"
                         + (f" ({rejected} malformed lines)" if rejected else ""))
    if not reader.kept:
        os.unlink(exo_path)
        raise TraceError(f"trace {path} has no chats (no chat.requested event): "
                         "nothing to re-simulate")
    reader.censor(t_end)
    trace = _fit(path, rules, exo_path, reader, events, exo_n, rejected, span[0], span[1], t_end)
    trace.deployments = switched
    trace.declines = reader.declines
    trace.timer_lag_ms = _timer_lag(reader, path, simulated)
    # on time, the history's clock events are re-created by the re-simulation's
    trace.ties = ties_clocks if trace.timer_lag_ms == 0 else ties
    trace.grouped = grouped
    # the platform is tied to the others only where chats may overflow to it
    trace.behind = _behind(exo_ts, exo_tenant, [n for n in numbers if n is not None],
                           {r.platform for r in ran_under if r.overflow_enabled})
    if recorded_outs is not None:
        trace.unexplained = recorded_outs.verdict()
    trace.tenants = tuple(tenants)
    trace.seen = dict(sorted(reader.seen.items()))
    if rejected:
        trace.seen["malformed lines (left out)"] = rejected
    if duplicates:
        trace.seen["duplicate events (ignored, as the engine does)"] = duplicates
    if switched:
        trace.seen["rules deployments"] = len(switched)
    col.end_at(t_end)
    trace.recorded = col.summary()
    trace.read_s = time.perf_counter() - started
    return trace


def _latest(d: dict[int, _V], n: int) -> dict[int, _V]:
    """``d``, or only its ``n`` latest entries once it holds twice as many."""
    return d if len(d) <= 2 * n else dict(list(d.items())[-n:])


def _behind(times: array[int], tenants: array[int], names: list[str],
            platforms: set[str]) -> dict[int, dict[str, int]]:
    """Index -> tenant -> the earliest time of the tenant's events at or after
    it, where that is earlier than the event's own (one tenant's clock ahead of
    another's). An event for every tenant (-1: a server's clock) is each one's.
    Overflow ties a platform to every tenant, and every tenant to it: a
    platform's earliest is everyone's, and a tenant's is no later than the
    platform's. A clock for every tenant limits nobody (each applies it at its
    own time, no earlier)."""
    behind: dict[int, dict[str, int]] = {}
    big = 2**63 - 1
    lows = [big] * len(names)  # per tenant, the earliest from here on
    shared = [k for k, name in enumerate(names) if name in platforms]
    low = big  # the earliest of all
    for i in range(len(times) - 1, -1, -1):
        ts = times[i]
        n = tenants[i]
        if n < 0:
            continue
        if ts < lows[n]:
            lows[n] = ts
        if ts < low:
            low = ts
        elif low < ts:
            floor = min([big, *(lows[k] for k in shared)])
            at: dict[str, int] = {}
            for k, name in enumerate(names):
                earliest = low if name in platforms else min(lows[k], floor)
                if earliest < ts:
                    at[name] = earliest
            behind[i] = at
    return behind


def _timer_lag(reader: _Reader, path: str, simulated: bool | None) -> int:
    """How late the history's timers fired after their deadline (see
    ``Trace.timer_lag_ms``): 0 where its clock events came at the deadlines (a
    simulation's); where clock events for every tenant came after one (a
    server's clock ticking, e.g. routeq serve --clock-ms), the 99th percentile
    of how late (a tick after a pause is no period), at least a second and a
    quarter for serve's ticks (its default period and polling); -1 otherwise
    (no clock event at or after a deadline, or a tenant's own after one), so
    that timers fire at the next event or clock event, as they came."""
    if simulated is None:
        where = Path(path)
        simulated = ((where if where.is_dir() else where.parent) / "summary.json").is_file()
    if simulated:
        return 0
    if reader.lateness:
        late = sorted(reader.lateness)
        p99 = late[min(len(late) - 1, int(0.99 * len(late)))]
        floor = SERVER_TICK_MS if reader.seen.get("timer ticks from the server's clock") else 1
        return max(p99, floor)
    # a tenant's own clock events after a deadline: they are kept, and no other
    # clock (nothing says when the others would have come)
    return 0 if reader.on_time and not reader.late_own else -1


def incarnation(key: tuple[str, str], n: int) -> tuple[str, str]:
    """The key of the ``n``-th chat with this id (0: the first; an id requested
    again after its chat ended names a new chat)."""
    return key if n == 0 else (key[0], f"{key[1]}#{n}")


def _brief(outs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(o["type"], o.get("tenant"), o.get("chat"), o.get("agent")) for o in outs]


class _RecordedOutputs:
    """The outputs a history recorded, read along the history and compared,
    event by event, with those the rules decide (what was decided, not how it
    is worded: type, tenant, chat, agent)."""

    def __init__(self, path: str) -> None:
        self.lines = _lines(Path(path))
        self.next: dict[str, Any] | None = self._read()
        self.differ = self.checked = 0
        self.first = ""

    def _read(self) -> dict[str, Any] | None:
        for line in self.lines:
            return dict(orjson.loads(line))
        return None

    def check(self, offset: int, outs: list[dict[str, Any]]) -> None:
        got: list[dict[str, Any]] = []
        while self.next is not None and self.next.get("offset", -1) <= offset:
            if self.next.get("offset") == offset:
                got.append(self.next)
            self.next = self._read()
        self.checked += 1
        if _brief(got) != _brief(outs):
            self.differ += 1
            if not self.first:
                def say(xs: list[dict[str, Any]]) -> str:
                    return "; ".join(" ".join(str(v) for v in b if v is not None)
                                     for b in _brief(xs)) or "nothing"
                self.first = (f"at log offset {offset}: recorded {say(got)}; these rules "
                              f"decide {say(outs)}")

    def verdict(self) -> tuple[int, int, str]:
        return self.differ, self.checked, self.first


def _fit(path: str, rules: Rules, exo_path: str, reader: _Reader, events: int, exo_n: int,
         rejected: int, t0: int, t1: int, t_end: int) -> Trace:
    chats = reader.kept
    exposure = 0
    gave_up = 0
    handle_pool: dict[str, list[int]] = {}
    accept_pool: list[int] = []
    bot_pool: list[tuple[str, int, bool]] = []
    amount_pool: dict[str, list[float]] = {}
    delay_pool: list[int] = []
    exposure_by_page: dict[str, list[int]] = {}  # page -> [ms exposed to waiting, gave up]
    for o in chats.values():
        if o.patience_ms >= 0:
            gave_up += 1
            exposure += o.patience_ms
            row = exposure_by_page.setdefault(o.page or "", [0, 0])
            row[0] += o.patience_ms
            row[1] += 1
        elif (seen := o.waited_ms()) >= 0:
            exposure += seen
            exposure_by_page.setdefault(o.page or "", [0, 0])[0] += seen
        # a chat ended while offered, before an answer, was not handled
        if o.handle_ms >= 0 and not (rules.acceptance_required and o.offers
                                     and o.offers[-1][0] == "end"):
            handle_pool.setdefault(o.page or "", []).append(o.handle_ms)
        accept_pool.extend(d for kind, d in o.offers if kind == "accept")
        if o.bot is not None:
            bot_pool.append(o.bot)
        if o.order is not None:
            amount_pool.setdefault(o.page or "", []).append(o.order[1])
            delay_pool.append(o.order[0])
    patience = exposure / gave_up if gave_up else math.inf
    order_p, tau = _fit_orders([o for o in chats.values() if o.handle_ms >= 0])
    return Trace(path=path, rules=rules, exo=exo_path, chats=chats, events=events,
                 exo_events=exo_n, rejected=rejected, t0=t0, t1=t1, t_end=t_end,
                 acceptance=reader.acceptance, patience_mean_ms=patience,
                 handle_pool=handle_pool, accept_pool=accept_pool, bot_pool=bot_pool,
                 order_p=order_p, order_tau_ms=tau * 1000, amount_pool=amount_pool,
                 delay_pool=delay_pool,
                 exposure_by_page={k: (v[0], v[1]) for k, v in exposure_by_page.items()})


def _fit_orders(served: list[Obs]) -> tuple[dict[str, float], float]:
    """p(page) and tau of P(order | served after wait w) = p(page)·exp(-w/tau), by maximum
    likelihood over a grid of tau (p has a closed form for a given tau, capped at 1)."""
    by_page: dict[str, list[tuple[int, bool]]] = {}
    for o in served:
        by_page.setdefault(o.page or "", []).append((max(o.wait_ms, 0), o.order is not None))
    best: tuple[float, dict[str, float], float] | None = None
    for tau_s in TAU_GRID_S:
        ll = 0.0
        ps: dict[str, float] = {}
        for page, rows in by_page.items():
            decay = [math.exp(-w / (tau_s * 1000)) if not math.isinf(tau_s) else 1.0
                     for w, _ in rows]
            k = sum(1 for _, y in rows if y)
            p = min(1.0, k / sum(decay, 0.0)) if k else 0.0
            ps[page] = p
            for (_, y), d in zip(rows, decay, strict=True):
                q = p * d
                if y:
                    ll += math.log(q) if q > 0 else -1e9
                elif q < 1:
                    ll += math.log1p(-q)
                else:
                    ll -= 1e9
        if best is None or ll > best[0] + 1e-9:
            best = (ll, ps, tau_s)
    if best is None:
        return {}, math.inf
    return best[1], best[2]


# ---------------------------------------------------------------- re-simulating

class _Draws:
    """One chat's random draws, the same in every candidate (common random numbers)."""

    __slots__ = ("patience_ms", "handle_ms", "u_order", "amount", "delay", "bot", "accept_ms",
                 "pick_ms")

    def __init__(self, trace: Trace, o: Obs | None, key: tuple[str, str], seed: int) -> None:
        rng = random.Random(f"{seed}|{key[0]}|{key[1]}")
        pm = trace.patience_mean_ms
        page = (o.page or "") if o is not None else ""
        # patience: observed, or censored at the observed wait, or unknown
        # (an exponential of mean pm, drawn as random.expovariate draws it; a
        # mean of 0, everyone who gave up at once, is no division by zero)
        extra = -math.log(1.0 - rng.random()) * pm if not math.isinf(pm) else math.inf
        waited = -1 if o is None else o.waited_ms()
        if o is not None and o.patience_ms >= 0:
            self.patience_ms = float(o.patience_ms)
        elif waited >= 0:  # patience is only known to be longer than that
            self.patience_ms = waited + 1 + extra
        else:
            self.patience_ms = extra
        pool = trace.handle_pool.get(page) or [h for hs in trace.handle_pool.values()
                                                for h in hs] or [180_000]
        pick = pool[int(rng.random() * len(pool))]
        if o is not None and o.handle_ms >= 0:
            self.handle_ms = o.handle_ms
        elif o is not None and o.status == ASSIGNED and o.open_ms >= 0:
            self.handle_ms = o.open_ms + 1 + pick  # held at the end: longer than that
        else:
            self.handle_ms = pick
        self.pick_ms = pick
        # the order: a uniform coupled to what was observed at the observed wait
        u = rng.random()
        if o is not None and o.handle_ms >= 0:
            q0 = _order_chance(trace, page, o.wait_ms)
            u = u * q0 if o.order is not None else q0 + u * (1.0 - q0)
        self.u_order = u
        amounts = trace.amount_pool.get(page) or [a for xs in trace.amount_pool.values()
                                                   for a in xs] or [0.0]
        a_pick = amounts[int(rng.random() * len(amounts))]
        delays = trace.delay_pool or [60_000]
        d_pick = delays[int(rng.random() * len(delays))]
        if o is not None and o.order is not None:
            self.delay, self.amount = o.order
        else:
            self.delay, self.amount = d_pick, a_pick
        bots = trace.bot_pool or [("end", 40_000, True)]
        b_pick = bots[int(rng.random() * len(bots))]
        if o is not None and o.bot is not None:
            self.bot = o.bot
        elif o is not None and o.status == BOT and o.open_ms >= 0:
            self.bot = (b_pick[0], o.open_ms + 1 + b_pick[1], b_pick[2])
        else:
            self.bot = b_pick
        acc = trace.accept_pool or [0]
        a_delay = acc[int(rng.random() * len(acc))]
        if o is not None:
            seen = [d for kind, d in o.offers if kind == "accept"]
            if seen:
                a_delay = seen[-1]
        self.accept_ms = a_delay


def _order_chance(trace: Trace, page: str, wait_ms: int) -> float:
    p = trace.order_p.get(page, 0.0)
    tau = trace.order_tau_ms
    return p if math.isinf(tau) else p * math.exp(-max(wait_ms, 0) / tau)


class _Chat:
    __slots__ = ("key", "obs", "draws", "status", "gen", "entered", "wait_ms", "offers",
                 "agent", "gave_up_at", "tenant")

    def __init__(self, key: tuple[str, str], obs: Obs | None, draws: _Draws, t: int) -> None:
        self.key = key
        self.tenant = key[0]
        self.obs = obs
        self.draws = draws
        self.status = NEW
        self.gen = 0
        self.entered = obs.t_req if obs is not None else t
        self.wait_ms = -1
        self.offers = 0
        self.agent = ""
        self.gave_up_at = -1


class Replay:
    """One candidate re-simulated over a trace: ``rules`` throughout, or, with
    ``recorded``, the trace's own rules and their deployments as they came."""

    def __init__(self, trace: Trace, rules: Rules, seed: int = 1,
                 recorded: bool = False) -> None:
        self.trace = trace
        self.rules = rules
        self.seed = seed
        self.switches = list(trace.deployments) if recorded else []
        # per tenant (or None: all, where chats overflow), its ties' numbers
        # (Trace.ties) and how many own events were emitted at each
        self.tie_at: dict[str | None, dict[int, int]] = {}
        self.group = trace.grouped
        # the input is what the history applied: the reader dropped what the
        # recorded rules' window dropped, and a candidate's own window (the
        # transport's, not routing's) must not drop more; own events' ids could
        # equal a history's: no window at all
        self.engine = Engine(rules, track_changes=False, dedup=False)
        self.collector = Figures(t0=trace.t0, t1=trace.t1, wrap_up_ms=rules.wrap_up_ms,
                                 tenants=trace.tenants)
        self.heap: list[_Item] = []
        self._seq = itertools.count()
        self.offset = 0
        self.n_ids = 0
        self.chats: dict[tuple[str, str], _Chat] = {}
        self.again: dict[tuple[str, str], int] = {}  # ids requested again after their end
        self.by_visitor: dict[tuple[str, str], list[_Chat]] = {}  # (tenant, visitor) -> chats
        self.clocks: set[tuple[str, int]] = set()
        # offers are answered one by one as the history answered them where it
        # answered any (a decline requeues a chat even without acceptance)
        self.confirm = rules.acceptance_required or trace.acceptance or trace.declines
        # where a server's clock fired the timers (its ticks are among the
        # exogenous events), the re-simulation's own clocks come after the
        # longest it took, so that they never fire a timer before it would have
        self.lag = trace.timer_lag_ms + 1 if trace.timer_lag_ms > 0 else trace.timer_lag_ms

    def _push(self, t: int, tenant: str, what: int, arg: Any, line: int = LAST) -> None:
        """Plan step ``what`` at ``t``; at equal times in the order of the
        history's ``line`` (where it re-creates that line's event), then as
        planned."""
        heapq.heappush(self.heap, (t, line, next(self._seq), tenant, what, arg))

    def _act(self, t: int, what: int, arg: Any) -> None:
        """Take one planned step: a chain over kinds, as the simulator's, not
        bound methods on the heap (one allocated per plan, called through the
        interpreter, and the heap a cycle with the re-simulation)."""
        if what == END:
            self._end(t, arg)
        elif what == ACCEPT:
            self._accept(t, arg)
        elif what == CLOCK:
            self._clock(t, arg)
        elif what == GIVE_UP:
            self._give_up(t, arg)
        elif what == DECLINE:
            self._decline(t, arg)
        elif what == GIVE_BACK:
            self._give_back(t, arg)
        elif what == BOT_DONE:
            self._bot_done(t, arg)
        elif what == ORDER:
            self._order(t, arg)

    def _push_close(self, t: int, c: _Chat, what: int, arg: Any) -> None:
        """Plan the action that closes ``c`` at ``t`` (where the history closed
        it then, at its line)."""
        close = c.obs.close if c.obs is not None else (-1, -1)
        self._push(t, c.tenant, what, arg, close[1] if close[0] == t else LAST)

    def _id(self) -> str:
        self.n_ids += 1
        return f"whatif-{self.n_ids}"

    def run(self, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Re-simulate; ``tick(n)`` is called after every ``TICK`` exogenous events."""
        with open(self.trace.exo, "rb") as exo:
            self._replay(exo, tick)
        # the trace ends at its last event: what it had not seen happen by
        # then (a chat still waiting or held) does not happen here either
        end = self.trace.t_end
        self._drain(end)
        self.collector.end_at(end)
        return self.collector.summary()

    def _replay(self, exo: BinaryIO, tick: Callable[[int], None] | None) -> None:
        """Every exogenous event (one a line, as the reader wrote them), and the
        own events before each."""
        loads = orjson.loads
        n = 0
        switches = self.switches
        ties = self.trace.ties
        behind = self.trace.behind
        for index, line in enumerate(exo):
            while switches and switches[0][0] <= index:
                _, before, new = switches.pop(0)
                self._drain(before)  # what came before it, under the old rules
                self.engine = Engine.restore(new, self.engine.snapshot(), track_changes=False,
                                             dedup=False)
            n += 1
            if n == TICK:
                if tick is not None:
                    tick(n)
                n = 0
            ev = loads(line)
            if self.lag == 0 and ev["type"] == "clock":
                continue  # on time: the engine's own deadlines clock it here
            ts = ev["ts"]
            self._before(ts, behind.get(index) if behind else None)
            tie = ties.get(index)
            if tie is not None:
                self._tie(ev.get("tenant"), ts, tie)
            self.emit(ev)
        if tick is not None and n:
            tick(n)

    def _drain(self, until: int) -> None:
        """Every own event planned up to ``until``, in order."""
        heap, pop = self.heap, heapq.heappop
        while heap and heap[0][0] <= until:
            t, _, _, _, what, arg = pop(heap)
            self._act(t, what, arg)

    def _before(self, ts: int, lows: dict[str, int] | None) -> None:
        """The own events before ``ts``, except those of a tenant whose later
        events in the history come no later than them (``lows``: its clock is
        behind)."""
        if lows is None:
            self._drain(ts - 1)
            return
        heap, pop = self.heap, heapq.heappop
        held: list[_Item] = []
        while heap and heap[0][0] < ts:
            item = pop(heap)
            low = lows.get(item[3])
            if low is not None and item[0] >= low:
                held.append(item)
            else:
                self._act(item[0], item[4], item[5])
        for item in held:
            heapq.heappush(heap, item)

    def _closed(self, ev: dict[str, Any]) -> None:
        """The chats an end closed are closed here too, and what was planned
        for them is void (a visitor leaving ends every chat they have open)."""
        tenant = ev["tenant"]
        if ev["type"] == "visitor.left":
            named = self.by_visitor.get((tenant, ev["visitor"]), [])
        else:
            one = self.chats.get((tenant, ev["chat"]))
            named = [one] if one is not None else []
        kept: list[_Chat] = []
        for c in named:
            if c.status != CLOSED and not views.is_open(self.engine, c.tenant, c.key[1]):
                served = c.status == ASSIGNED
                c.status = CLOSED
                c.gen += 1
                if served:
                    self._served(c, ev["ts"])
            if c.status != CLOSED:
                kept.append(c)
        if ev["type"] == "visitor.left":
            self.by_visitor[(tenant, ev["visitor"])] = kept

    def _tie(self, tenant: str | None, ts: int, tie: tuple[int, int]) -> None:
        """At a tie, as many of the re-simulation's own events of the tenant go
        first as did in the history (tenants' times differ where events came
        late, so ties are counted per tenant; where chats may overflow, all
        tenants are one). Events held back (their tenant is behind) wait."""
        key = None if self.group else tenant
        number, first = tie
        counts = self.tie_at.get(key)
        if counts is None:
            counts = self.tie_at[key] = {}
        done = counts.get(number, 0)
        heap, pop = self.heap, heapq.heappop
        others: list[_Item] = []
        while heap and heap[0][0] <= ts and done < first:
            item = pop(heap)
            if item[0] < ts or (key is not None and item[3] != key):
                others.append(item)
                continue
            before = self.offset
            self._act(ts, item[4], item[5])
            done += self.offset - before
        counts[number] = done
        self.tie_at[key] = _latest(counts, 16 * TIE_TIMES)  # the older: long forgotten
        for item in others:
            heapq.heappush(heap, item)

    def emit(self, ev: dict[str, Any]) -> None:
        if ev["type"] == "chat.requested":
            key = (ev["tenant"], ev["chat"])
            was = self.chats.get(key)
            if was is not None and was.status == CLOSED:  # the id names a new chat
                del self.chats[key]
                self.again[key] = self.again.get(key, 0) + 1
        outs = self.engine.apply(ev, self.offset)
        self.offset += 1
        col = self.collector
        col.event(ev)
        tenant = ev.get("tenant")
        others: list[str] = []  # tenants besides the event's that outputs touched
        for o in outs:
            col.output(o)
            if o["tenant"] != tenant and o["tenant"] not in others:
                others.append(o["tenant"])
            if o["type"] in CHAT_OUTPUTS:
                key = (o.get("origin") or o["tenant"], o["chat"])
                c = self.chats.get(key)
                if c is None:
                    which = incarnation(key, self.again.get(key, 0))
                    obs = self.trace.chats.get(which)
                    c = self.chats[key] = _Chat(key, obs,
                                                _Draws(self.trace, obs, which, self.seed), o["ts"])
                    if obs is not None:
                        self.by_visitor.setdefault((key[0], obs.visitor), []).append(c)
                self._react(c, o)
        if ev["type"] in ("visitor.left", "chat.ended"):
            self._closed(ev)
        if self.lag < 0:  # no clock in the history: timers fire at the next event
            return
        if tenant is not None:  # else a clock for every tenant
            self._plan_clock(tenant)
        for name in others:
            self._plan_clock(name)

    def _plan_clock(self, tenant: str) -> None:
        """A clock at the tenant's next deadline (once per deadline)."""
        d = self.engine.next_deadline(tenant)
        if d is not None and (tenant, d) not in self.clocks:
            self.clocks.add((tenant, d))
            self._push(d + self.lag, tenant, CLOCK, tenant)

    # ------------------------------------------------------------ reactions

    def _react(self, c: _Chat, o: dict[str, Any]) -> None:
        """What the re-simulated world does about an output of CHAT_OUTPUTS
        (a chain, not a table of bound methods: see Engine._handle)."""
        otype = o["type"]
        if otype == "chat.assigned":
            self._on_assigned(c, o)
        elif otype == "chat.queued":
            self._on_queued(c, o)
        elif otype == "chat.to_bot":
            self._on_to_bot(c, o)
        elif otype == "chat.requeued":
            self._on_requeued(c, o)
        else:
            self._on_abandoned(c, o)

    def _on_queued(self, c: _Chat, o: dict[str, Any]) -> None:
        if c.status == WAITING or c.status == CLOSED:
            return
        c.status = WAITING
        c.gen += 1
        if c.gave_up_at < 0:
            p = c.draws.patience_ms
            if not math.isinf(p):
                c.gave_up_at = c.entered + int(p)
        if c.gave_up_at >= 0:  # (again: patience may have run out while it was offered)
            self._push_close(max(c.gave_up_at, o["ts"]), c, GIVE_UP, c)

    def _on_assigned(self, c: _Chat, o: dict[str, Any]) -> None:
        t = o["ts"]
        c.status = ASSIGNED
        c.gen += 1
        c.agent = o["agent"]
        if c.wait_ms < 0:
            c.wait_ms = t - c.entered
        if not self.confirm:
            self._serve(c, t, c.offers)
            c.offers += 1
            return
        seen = c.obs.offers if c.obs is not None else []
        kind, delay = seen[c.offers] if c.offers < len(seen) else ("accept", c.draws.accept_ms)
        c.offers += 1
        if kind == "accept":
            self._push(t + delay, c.tenant, ACCEPT, (c, c.gen, c.offers - 1))
        elif kind == "decline":
            self._push(t + delay, c.tenant, DECLINE, (c, c.gen))
        elif kind == "end":  # the chat ended (the visitor left) before an answer
            self._push_close(t + delay, c, END, (c, c.gen))
        elif kind == "transfer":  # handed on before an answer
            self._push(t + delay, c.tenant, GIVE_BACK, (c, c.gen, c.offers - 1))
        # "none": the offer times out (the engine's timer)

    def _on_to_bot(self, c: _Chat, o: dict[str, Any]) -> None:
        c.status = BOT
        c.gen += 1
        self._push(o["ts"] + c.draws.bot[1], c.tenant, BOT_DONE, (c, c.gen))

    def _on_requeued(self, c: _Chat, o: dict[str, Any]) -> None:
        if c.status != CLOSED:
            c.status = NEW  # waiting again once queued
            c.gen += 1

    def _on_abandoned(self, c: _Chat, o: dict[str, Any]) -> None:
        c.status = CLOSED
        c.gen += 1

    # ------------------------------------------------------------ actions

    def _clock(self, t: int, tenant: str) -> None:
        self.clocks.discard((tenant, t - self.lag))
        self.emit({"type": "clock", "id": self._id(), "ts": t, "tenant": tenant})

    def _give_up(self, t: int, c: _Chat) -> None:
        if c.status != WAITING:
            return
        obs = c.obs
        how = obs.abandon if obs is not None else "visitor.left"
        if how == "chat.ended":
            self.emit({"type": "chat.ended", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "chat": c.key[1], "resolved": False})
        else:
            visitor = obs.visitor if obs is not None else ""
            self.emit({"type": "visitor.left", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "visitor": visitor})

    def _handle(self, c: _Chat, n: int) -> int:
        """The handle time of the service the chat's ``n``-th assignment begins."""
        cut = c.obs.cuts.get(n) if c.obs is not None else None
        return c.draws.handle_ms if cut is None else cut + 1 + c.draws.pick_ms

    def _serve(self, c: _Chat, t: int, n: int) -> None:
        """The service the chat's ``n``-th assignment begins at ``t``: it ends
        after its handle time, or its agent gives it back (transfers it or
        declines it) where the trace's did."""
        back = c.obs.given_back.get(n) if c.obs is not None else None
        if back is not None:
            self._push(t + back[0], c.tenant, GIVE_BACK, (c, c.gen, n))
        else:
            self._push_close(t + self._handle(c, n), c, END, (c, c.gen))

    def _give_back(self, t: int, arg: tuple[_Chat, int, int]) -> None:
        c, gen, n = arg
        if c.gen != gen or c.status != ASSIGNED or c.obs is None:
            return
        _, typ, to_agent, to_skill = c.obs.given_back[n]
        ev: dict[str, Any] = {"type": typ, "id": self._id(), "ts": t,
                              "tenant": c.tenant, "chat": c.key[1], "agent": c.agent}
        if to_agent is not None:
            ev["to_agent"] = to_agent
        if to_skill is not None:
            ev["to_skill"] = to_skill
        self.emit(ev)

    def _accept(self, t: int, arg: tuple[_Chat, int, int]) -> None:
        c, gen, n = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        self.emit({"type": "chat.accepted", "id": self._id(), "ts": t, "tenant": c.tenant,
                   "chat": c.key[1], "agent": c.agent})
        if c.gen == gen:
            self._serve(c, t, n)

    def _decline(self, t: int, arg: tuple[_Chat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        self.emit({"type": "chat.declined", "id": self._id(), "ts": t, "tenant": c.tenant,
                   "chat": c.key[1], "agent": c.agent})

    def _end(self, t: int, arg: tuple[_Chat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        c.status = CLOSED
        c.gen += 1
        obs = c.obs
        how, resolved = obs.end if obs is not None else ("chat.ended", True)
        if how == "visitor.left" and obs is not None:
            self.emit({"type": "visitor.left", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "visitor": obs.visitor})
        else:
            self.emit({"type": "chat.ended", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "chat": c.key[1], "resolved": resolved})
        self._served(c, t)

    def _served(self, c: _Chat, t: int) -> None:
        """A service ended at ``t``: whether an order follows it."""
        obs = c.obs
        if obs is None:
            return
        d = c.draws
        if d.u_order < _order_chance(self.trace, obs.page or "", c.wait_ms):
            self._push(t + d.delay, c.tenant, ORDER, (c, d.amount))

    def _order(self, t: int, arg: tuple[_Chat, float]) -> None:
        c, amount = arg
        assert c.obs is not None
        self.emit({"type": "order.placed", "id": self._id(), "ts": t, "tenant": c.tenant,
                   "visitor": c.obs.visitor, "amount": amount})

    def _bot_done(self, t: int, arg: tuple[_Chat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != BOT:
            return
        kind, _, resolved = c.draws.bot
        if kind == "escalate":
            c.entered = t
            self.emit({"type": "bot.escalated", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "chat": c.key[1]})
            if c.status == BOT:  # robot_only: the engine keeps it with the bot
                c.status = CLOSED
                self.emit({"type": "chat.ended", "id": self._id(), "ts": t, "tenant": c.tenant,
                           "chat": c.key[1], "resolved": False})
            return
        c.status = CLOSED
        c.gen += 1
        if kind == "left" and c.obs is not None:
            self.emit({"type": "visitor.left", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "visitor": c.obs.visitor})
        else:
            self.emit({"type": "chat.ended", "id": self._id(), "ts": t, "tenant": c.tenant,
                       "chat": c.key[1], "resolved": resolved})


def run_candidate(trace: Trace, rules: Rules, seed: int = 1,
                  tick: Callable[[int], None] | None = None,
                  recorded: bool = False) -> dict[str, Any]:
    """Re-simulate ``trace`` under ``rules`` (with ``recorded``: the trace's own
    rules and deployments); the metrics summary (with ``whatif`` extras)."""
    with relaxed_gc():
        return Replay(trace, rules, seed, recorded).run(tick)


def dumps(summary: dict[str, Any]) -> bytes:
    return orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)
