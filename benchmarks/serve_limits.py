"""``routeq serve`` under clients that hold resources (issue 14).

Two measurements, each against a fresh in-memory server (``--history
200000``) on loopback, the clients in other processes:

- ``rss``: the server's resident memory after 200 streams resume with
  ``?from=0`` from a history of 200,000 outputs and never read (each socket
  with a small receive buffer). Opening stops early, and says so, if the
  server passes ``--rss-cap-mib`` (the code before the fix grew by tens of
  MiB a stream). ``--routeq-root DIR`` runs another checkout's serve (e.g.
  ``git archive 95fa427 | tar -x -C /tmp/before``) for the "before" figure.
- ``ingest``: the rate of one well-behaved client (keep-alive, batches of 100
  events, each answered before the next) alone, and while another process
  holds 1,000 idle connections and 200 slow streams (resuming from 0 and
  reading 4 KiB every 0.2 s each); runs interleaved, medians and their ratio.

Results go to ``benchmarks/results/serve_limits.json`` (or ``--out``).

    .venv/bin/python -m benchmarks.serve_limits                 # both, ~3 min
    .venv/bin/python -m benchmarks.serve_limits --part rss --routeq-root /tmp/before \\
        --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import environment, loadavg, rss_mib, write_json
from benchmarks.tokens_file import tokens_toml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_limits.json"
ADMIN = "bench-admin-token-0123456789"
TOKEN = "bench-shop-token-0123456789"
TOKENS = tokens_toml(ADMIN, {"shop": TOKEN})


class Serve:
    def __init__(self, root: Path, tmp: Path, extra: list[str]) -> None:
        (tmp / "tokens.toml").write_text(TOKENS)
        ready = tmp / "ready"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(root)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "serve", "--port", "0", "--clock-ms", "0",
             "--tokens", str(tmp / "tokens.toml"), "--history", "200000",
             "--ready-file", str(ready), *extra],
            cwd=root, env=env, stderr=open(tmp / "serve.log", "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start: {(tmp / 'serve.log').read_text()}")
            time.sleep(0.05)
        self.port = int(ready.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def batch(prefix: str, n: int) -> bytes:
    ts = 1_000
    return b"".join(b'{"type":"chat.requested","id":"%s-%d","ts":%d,"tenant":"shop",'
                    b'"visitor":"v%s-%d","chat":"c%s-%d"}\n'
                    % (prefix.encode(), i, ts, prefix.encode(), i, prefix.encode(), i)
                    for i in range(n))


def fill(server: Serve, outputs: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    for p in range(outputs // 1000):
        post(conn, batch(f"h{p}", 1000))  # one chat.queued each
    conn.close()


def stream_socket(port: int, rcvbuf: int = 4096) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /v1/stream?from=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    return s


def settle(pid: int, limit_s: float = 40.0) -> float:
    """RSS once it stops growing (no MiB more over 3 s), or after ``limit_s``."""
    t0 = time.monotonic()
    seen = [rss_mib(pid)]
    while time.monotonic() - t0 < limit_s:
        time.sleep(0.5)
        seen.append(rss_mib(pid))
        if len(seen) > 6 and max(seen[-7:]) - min(seen[-7:]) < 1.0:
            break
    return seen[-1]


def measure_rss(root: Path, streams: int, history: int, cap_mib: float,
                new_flags: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="serve-limits-") as tmp:
        extra = ["--max-streams-per-tenant", str(streams + 10),
                 "--max-streams", str(streams + 10)] if new_flags else []
        server = Serve(root, Path(tmp), extra)
        try:
            fill(server, history)
            base = settle(server.proc.pid, 10)
            held = []
            steps = []
            capped = False
            for i in range(streams):
                held.append(stream_socket(server.port))
                if (i + 1) % 20 == 0:
                    now = settle(server.proc.pid, 20)
                    steps.append({"streams": i + 1, "rss_mib": round(now, 1)})
                    if now > cap_mib:
                        capped = True
                        break
            final = settle(server.proc.pid)
            n = len(held)
            for s in held:
                s.close()
            return {"streams": n, "asked": streams, "stopped_at_cap": capped,
                    "rss_before_streams_mib": round(base, 1), "rss_mib": round(final, 1),
                    "per_stream_mib": round((final - base) / n, 2), "steps": steps}
        finally:
            server.stop()


# ------------------------------------------------------------ ingest


def hold(port: int, idle: int, slow: int, seconds: float) -> None:
    """(In its own process) hold ``idle`` connections that send nothing and
    ``slow`` streams that read 4 KiB every 0.2 s each, for ``seconds``."""
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    streams = [stream_socket(port, 16384) for _ in range(slow)]
    for s in streams:
        s.setblocking(False)
    print("held", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in streams:
            with contextlib.suppress(OSError):  # (BlockingIOError: nothing yet)
                s.recv(4096)
        time.sleep(0.2)
    for s in conns + streams:
        s.close()


def client_rate(port: int, seconds: float, tag: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    body_n = 100
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        post(conn, batch(f"{tag}-{i}", body_n))
        n += body_n
        i += 1
    rate = n / (time.monotonic() - t0)
    conn.close()
    return rate


def post(conn: http.client.HTTPConnection, body: bytes) -> None:
    conn.request("POST", "/v1/events", body=body, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"post answered {resp.status}: {data[:300]!r}")


def measure_ingest(root: Path, reps: int, seconds: float, idle: int,
                   slow: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="serve-limits-") as tmp:
        server = Serve(root, Path(tmp), ["--max-streams-per-tenant", str(slow + 10)])
        try:
            fill(server, 200_000)
            alone: list[float] = []
            loaded: list[float] = []
            rss: list[float] = []
            for r in range(reps):
                alone.append(client_rate(server.port, seconds, f"a{r}"))
                holder = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.serve_limits", "--hold",
                     str(server.port), str(idle), str(slow), str(seconds + 30)],
                    cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ,
                                                           "PYTHONPATH": str(ROOT)})
                assert holder.stdout is not None
                holder.stdout.readline()  # "held"
                time.sleep(1.0)
                loaded.append(client_rate(server.port, seconds, f"l{r}"))
                rss.append(rss_mib(server.proc.pid))
                holder.terminate()
                holder.wait()
                time.sleep(1.0)
            ma, ml = statistics.median(alone), statistics.median(loaded)
            return {"alone_events_s": [round(x) for x in alone],
                    "loaded_events_s": [round(x) for x in loaded],
                    "median_alone_events_s": round(ma), "median_loaded_events_s": round(ml),
                    "ratio_loaded_to_alone": round(ml / ma, 3),
                    "idle_connections": idle, "slow_streams": slow, "seconds": seconds,
                    "server_rss_mib_loaded": [round(x, 1) for x in rss]}
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--hold"]:
        hold(int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4]))
        return 0
    p = argparse.ArgumentParser(prog="benchmarks.serve_limits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("rss", "ingest", "all"), default="all")
    p.add_argument("--routeq-root", type=Path, default=ROOT,
                   help="the checkout whose serve runs (default: this one)")
    p.add_argument("--old-flags", action="store_true",
                   help="the checkout's serve has no --max-streams flags (code before the fix)")
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--history", type=int, default=200_000)
    p.add_argument("--rss-cap-mib", type=float, default=3_000.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--idle", type=int, default=1_000)
    p.add_argument("--slow", type=int, default=200)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    doc: dict[str, Any] = {"benchmark": "serve_limits", "environment": environment(),
                           "routeq_root": str(args.routeq_root), "load_before": loadavg()}
    if args.part in ("rss", "all"):
        doc["rss"] = measure_rss(args.routeq_root, args.streams, args.history,
                                 args.rss_cap_mib, not args.old_flags)
        print(orjson.dumps(doc["rss"]).decode(), flush=True)
    if args.part in ("ingest", "all"):
        doc["ingest"] = measure_ingest(args.routeq_root, args.reps, args.seconds, args.idle,
                                       args.slow)
        print(orjson.dumps(doc["ingest"]).decode(), flush=True)
    doc["load_after"] = loadavg()
    write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
