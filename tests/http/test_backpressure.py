"""Backpressure on HTTP ingest: when more events wait for the next group commit
than ``--max-queue``, a POST is answered 429 with ``Retry-After`` and none of
its events is logged; a client that retries after that long gets them all in,
each exactly once."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, Server, ev
from tests.routeq import routeq
from tests.tally import TALLY

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CONNS = 16
BATCH = 20


def request(batch: list[dict[str, object]]) -> bytes:
    body = b"".join(orjson.dumps(e) + b"\n" for e in batch)
    return (b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
            b"Content-Type: application/x-ndjson\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_over_the_queue_bound_429_with_retry_after_and_nothing_lost(tmp_path: Path) -> None:
    n = 0
    batches: dict[int, list[dict[str, object]]] = {}
    accepted: set[str] = set()
    refused: list[int] = []
    with Server(tmp_path, "--max-queue", str(BATCH + BATCH // 2)) as server:
        for _ in range(30):  # rounds of simultaneous posts, until some were refused
            socks = []
            for _ in range(CONNS):
                batch = [ev("chat.requested", f"e{n + i}", 1_000 + n + i, "shopA",
                            visitor=f"v{n + i}", chat=f"c{n + i}") for i in range(BATCH)]
                batches[n] = batch
                n += BATCH
                s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
                socks.append((n - BATCH, s))
            for _, s in socks:  # all requests are on the wire before any answer is read
                s.sendall(request(batches[_]))
            for key, s in socks:
                status, headers, body = answer(s)
                s.close()
                if status == 429:
                    assert int(headers["retry-after"]) >= 1
                    assert "max-queue" in orjson.loads(body)["error"]
                    refused.append(key)
                else:
                    assert status == 200, body
                    accepted |= {str(e["id"]) for e in batches[key]}
            if refused:
                break
        assert refused, "the queue bound was never reached"
        TALLY["http_429"] += len(refused)
        log = routeq("export", "--state", server.state).stdout  # nothing of a 429 is logged
        logged = {orjson.loads(x)["id"] for x in log.splitlines()}
        assert logged == accepted
        retry_after = 1.0
        for key in refused:  # a well-behaved client retries after Retry-After
            while True:
                status, ans = server.post(ADMIN, batches[key])
                if status != 429:
                    break
                time.sleep(retry_after)
            assert status == 200 and ans["accepted"] == BATCH
    log = routeq("export", "--state", server.state).stdout
    ids = [orjson.loads(x)["id"] for x in log.splitlines()]
    assert sorted(ids) == sorted(str(e["id"]) for b in batches.values() for e in b)
    assert len(ids) == len(set(ids))
