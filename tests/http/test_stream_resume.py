"""A stream resumed long ago: after far more outputs than ``--history`` keeps
in memory, a ``Last-Event-ID`` near the start gives the events right after
it, the bytes of a replay, read from the state where that position is (not
re-derived from offset 0)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, Server, ev
from tests.routeq import routeq

pytestmark = pytest.mark.integration

TENANT = "far"
POSTS = 30
PER_POST = 20
HISTORY = 50


def numbered(lines: list[bytes]) -> list[tuple[str, bytes]]:
    """(id ``OFFSET.K``, line) of outputs in log order, as the stream numbers them."""
    out = []
    last, k = -1, -1
    for ln in lines:
        off = orjson.loads(ln)["offset"]
        k = k + 1 if off == last else 0
        last = off
        out.append((f"{off}.{k}", ln))
    return out


def resume_reads(server: Server) -> dict[str, float]:
    status, text = server.get("/metrics", ADMIN)
    assert status == 200
    return {m[1]: float(m[2]) for m in re.finditer(
        r'^routeq_resume_reads_total\{what="(\w+)"\} (\S+)$', text, re.M)}


def test_resume_far_behind_the_history_starts_right_after_the_id(tmp_path: Path) -> None:
    with Server(tmp_path, "--history", str(HISTORY)) as server:
        firsts = []  # first offset of each post (a post = one write = one log segment)
        for p in range(POSTS):
            events = [ev("agent.state", f"a{p}", 1_000 * p, TENANT, agent=f"ag{p}",
                         status="online", capacity=3)]
            events += [ev("chat.requested", f"r{p}-{i}", 1_000 * p + i, TENANT,
                          visitor=f"v{p}-{i}", chat=f"c{p}-{i}") for i in range(PER_POST)]
            status, ans = server.post(ADMIN, events)
            assert status == 200
            firsts.append(ans["results"][0]["offset"])
        # what was decided, numbered as the stream numbers it (replay reads the
        # state beside the running server)
        outputs = numbered([ln for ln in routeq("replay", "--state", server.state)
                            .stdout.split(b"\n") if ln])
        assert len(outputs) > 10 * HISTORY
        before = resume_reads(server)
        assert before == {"stored_outputs": 0.0, "replayed_inputs": 0.0}

        # resume from an output of the 21st post: 600 outputs ago, 12 x the history
        at = next(i for i, (oid, _) in enumerate(outputs)
                  if int(oid.split(".")[0]) >= firsts[20]) + 3
        last_id = outputs[at][0]
        st = server.stream(ADMIN, last_event_id=last_id, query=f"?tenant={TENANT}")
        want = outputs[at + 1:]
        got = st.take(len(want))
        st.close()
        assert [g[0] for g in got] == [oid for oid, _ in want]
        assert [g[2] for g in got] == [orjson.loads(ln) for _, ln in want]

        # it read the stored outputs from the segment that holds the id on,
        # not the log from offset 0
        reads = resume_reads(server)
        assert reads["replayed_inputs"] == 0
        from_segment = sum(1 for oid, _ in outputs if int(oid.split(".")[0]) >= firsts[20])
        assert 0 < reads["stored_outputs"] <= from_segment
        assert reads["stored_outputs"] < len(outputs) / 2

        # ?from= far back works the same way
        st = server.stream(ADMIN, query=f"?tenant={TENANT}&from={firsts[2]}")
        want = [(oid, ln) for oid, ln in outputs if int(oid.split(".")[0]) >= firsts[2]]
        got = st.take(len(want))
        st.close()
        assert [g[0] for g in got] == [oid for oid, _ in want]
