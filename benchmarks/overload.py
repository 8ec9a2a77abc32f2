"""Overload: a 10x burst (the double11 midnight peak is 10x the evening) against
the embedded runtime and the HTTP server, for a bounded time.

Traffic (``benchmarks/mixed_events.py``, 20 tenants, 1 % re-sent duplicates)
is offered at a base rate, then at 10x the base rate for the burst, then at the
base rate again:

- ``routeq run - --state``: the events are written into its stdin at those
  rates (a pipe: when routeq falls behind, the writer blocks, which is the
  pipe's backpressure);
- ``routeq serve --state``: POSTs of ``--batch`` events from ``--clients``
  connections; a 429 is retried after its ``Retry-After``.

Reported per target: offered and achieved rates, the process's peak RSS
(VmHWM) before and after the burst, events lost (every event written or
answered 2xx must be in the log: ``routeq export``), 429s, and how long after
the burst ended the backlog took to drain (runtime: until the output for the
last burst event appeared; server: until a single-event POST was answered in
under 50 ms again). Run::

    .venv/bin/python -m benchmarks.overload            # base 4,000 ev/s, 10x for 30 s
    .venv/bin/python -m benchmarks.overload --quick    # 10x for 8 s

Writes ``benchmarks/results/overload.json``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import rss_mib
from benchmarks.mixed_events import events as mixed
from benchmarks.tokens_file import tokens_toml

ROOT = Path(__file__).resolve().parents[1]
ROUTEQ = [sys.executable, "-m", "streams.cli"]
TOKEN = "overload-admin-token-0123456789"


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("ROUTEQ_CRASH_POINT", None)
    return e


def rss_peak_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, MiB."""
    return rss_mib(pid, "VmHWM")


def phase(name: str, rate: float, n: int, took: float, pid: int) -> dict[str, Any]:
    """A load phase's figures: offered and achieved rate, memory now and at peak."""
    return {"phase": name, "offered_per_s": rate, "events": n,
            "achieved_per_s": round(n / took), "rss_mib": round(rss_mib(pid), 1),
            "peak_rss_mib": round(rss_peak_mib(pid), 1)}


def phases(base: int, burst_s: float, calm_s: float) -> list[tuple[str, int, float]]:
    return [("before", base, calm_s), ("burst", base * 10, burst_s), ("after", base, calm_s)]


def exported_ids(state: Path) -> list[tuple[str, str]]:
    log = subprocess.run([*ROUTEQ, "export", "--state", str(state)], capture_output=True,
                         env=_env(), cwd=ROOT, check=True, timeout=600).stdout
    out = []
    for line in log.splitlines():
        o = orjson.loads(line)
        out.append((o.get("tenant", ""), o["id"]))
    return out


# ------------------------------------------------------------ embedded runtime


def embedded(d: Path, base: int, burst_s: float, calm_s: float) -> dict[str, Any]:
    plan = phases(base, burst_s, calm_s)
    total = sum(int(r * s) for _, r, s in plan)
    gen = mixed(total, 3, dup_rate=0.01, bad_rate=0.0)
    state = d / "run-state"
    proc = subprocess.Popen([*ROUTEQ, "run", "-", "--state", str(state), "--quiet"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    last_offset = [-1]
    seen_at: dict[int, float] = {}

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            off = orjson.loads(line)["offset"]
            last_offset[0] = off
            seen_at.setdefault(off, time.monotonic())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = 0
    report: dict[str, Any] = {"phases": []}
    burst_last = -1
    burst_end = 0.0
    for name, rate, secs in plan:
        t0 = time.monotonic()
        n = int(rate * secs)
        step = max(1, rate // 100)  # write in slices of 10 ms worth
        i = 0
        while i < n:
            k = min(step, n - i)
            proc.stdin.write(b"".join(next(gen) + b"\n" for _ in range(k)))
            proc.stdin.flush()
            i += k
            sent += k
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        took = time.monotonic() - t0
        report["phases"].append(phase(name, rate, n, took, proc.pid))
        if name == "burst":
            burst_last, burst_end = sent - 1, time.monotonic()
    peak = rss_peak_mib(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=600)
    t.join(timeout=60)
    # the output for the last burst event (or a later one) shows the backlog drained
    drained = min((ts for off, ts in seen_at.items() if off >= burst_last), default=None)
    logged = exported_ids(state)
    report.update({
        "events_sent": sent, "events_logged": len(logged), "lost": sent - len(logged),
        "peak_rss_mib": round(peak, 1),
        "drained_s_after_burst": (round(max(0.0, drained - burst_end), 3)
                                  if drained is not None else None),
    })
    return report


# ------------------------------------------------------------------ HTTP serve


def serve(d: Path, base: int, burst_s: float, calm_s: float, clients: int,
         batch: int) -> dict[str, Any]:
    tokens = d / "tokens.toml"
    tokens.write_text(tokens_toml(TOKEN, {}))
    ready = d / "ready"
    state = d / "serve-state"
    log = open(d / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*ROUTEQ, "serve", "--port", "0", "--tokens", str(tokens),
                             "--state", str(state), "--ready-file", str(ready),
                             "--clock-ms", "0"], stdout=log, stderr=log, env=_env(), cwd=ROOT)
    deadline = time.monotonic() + 90
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)
    port = int(ready.read_text())
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    plan = phases(base, burst_s, calm_s)
    total = sum(int(r * s) for _, r, s in plan)
    gen = mixed(total, 5, dup_rate=0.01, bad_rate=0.0)
    lock = threading.Lock()
    acked: set[tuple[str, str]] = set()
    counts = {"posts": 0, "429": 0, "errors": 0, "accepted": 0, "duplicate": 0}

    def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, Any, float]:
        t0 = time.monotonic()
        conn.request("POST", "/v1/events", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        retry = float(resp.getheader("Retry-After") or 0)
        return resp.status, orjson.loads(data), retry if resp.status == 429 else \
            time.monotonic() - t0

    def client(lines: list[bytes], rate: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        t0 = time.monotonic()
        for j in range(0, len(lines), batch):
            part = lines[j:j + batch]
            while True:
                status, ans, extra = post(conn, b"\n".join(part))
                with lock:
                    counts["posts"] += 1
                if status != 429:
                    break
                with lock:
                    counts["429"] += 1
                time.sleep(extra)
            with lock:
                if status != 200:
                    counts["errors"] += 1
                    continue
                for line, r in zip(part, ans["results"], strict=True):
                    counts[r["status"]] = counts.get(r["status"], 0) + 1
                    if r["status"] in ("accepted", "duplicate"):
                        o = orjson.loads(line)
                        acked.add((o.get("tenant", ""), o["id"]))
            ahead = t0 + (j + len(part)) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        conn.close()

    report: dict[str, Any] = {"phases": []}
    burst_end = 0.0
    for name, rate, secs in plan:
        n = int(rate * secs)
        lines = [next(gen) for _ in range(n)]
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(lines[k::clients], rate / clients))
                   for k in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        took = time.monotonic() - t0
        report["phases"].append(phase(name, rate, n, took, proc.pid))
        if name == "burst":
            burst_end = time.monotonic()
            # drained: a single small POST answered quickly again
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            k = 0
            while True:
                k += 1
                status, _, took1 = post(conn, orjson.dumps(
                    {"type": "clock", "id": f"probe{k}", "ts": 1, "tenant": "probe"}))
                if status == 200 and took1 < 0.05:
                    break
            conn.close()
            report["drained_s_after_burst"] = round(time.monotonic() - burst_end, 3)
    peak = rss_peak_mib(proc.pid)
    proc.terminate()
    proc.wait(timeout=120)
    log.close()
    logged = [key for key in exported_ids(state) if key[0] != "probe"]  # not the probes
    logged_set = set(logged)
    report.update({
        "events_offered": total, "events_acknowledged": len(acked),
        "lost": len(acked - logged_set),
        # re-sent copies are logged as they came and answered "duplicate"; each
        # distinct event was accepted (applied) once
        "answered_accepted": counts["accepted"], "answered_duplicate": counts["duplicate"],
        "applied_twice": counts["accepted"] - len(logged_set),
        "posts": counts["posts"], "answered_429": counts["429"], "errors": counts["errors"],
        "peak_rss_mib": round(peak, 1),
    })
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=int, default=4000, help="events/s outside the burst")
    p.add_argument("--burst-s", type=float, default=30.0)
    p.add_argument("--calm-s", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="burst 8 s, calm 4 s")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "overload.json"))
    a = p.parse_args(argv)
    if a.quick:
        a.burst_s, a.calm_s = 8.0, 4.0
    with tempfile.TemporaryDirectory() as d:
        result = {
            "base_per_s": a.base, "burst_per_s": a.base * 10, "burst_s": a.burst_s,
            "calm_s": a.calm_s, "cpus": os.cpu_count(),
            "embedded": embedded(Path(d), a.base, a.burst_s, a.calm_s),
            "http": serve(Path(d), a.base, a.burst_s, a.calm_s, a.clients, a.batch),
        }
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2)
    Path(a.json).write_bytes(text + b"\n")
    print(text.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
