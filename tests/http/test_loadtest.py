"""``routeq loadtest`` against a real server (short and bounded)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, Server
from tests.routeq import routeq

pytestmark = pytest.mark.integration


def test_loadtest_reports_rate_errors_and_latency(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        out = tmp_path / "report.json"
        proc = routeq("loadtest", server.url, "--scenario", "double11", "--rate", "600",
                      "--duration", "3", "--batch", "20", "--token", ADMIN, "--json", out)
        report = orjson.loads(out.read_bytes())
        assert report["errors"] == 0 and report["rejected"] == 0
        assert report["accepted"] == report["sent"] == 1800
        assert report["achieved_rate"] > 0
        assert report["latency_samples"] >= 1
        assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
        assert b"POST -> decision" in proc.stdout
        # its traffic went to a tenant of its own
        tenants = server.get("/v1/tenants", ADMIN)[1]["tenants"]
        assert tenants == [f"bigshop-{report['tenant_suffix']}"]


def test_loadtest_refuses_other_hosts_and_unbounded_runs() -> None:
    proc = routeq("loadtest", "http://10.1.2.3:8080", "--rate", "10", "--duration", "1",
                  check=False)
    assert proc.returncode == 2 and b"loopback" in proc.stderr
    proc = routeq("loadtest", "http://127.0.0.1:9", "--rate", "100000", "--duration", "600",
                  check=False)
    assert proc.returncode == 2 and b"bound" in proc.stderr
