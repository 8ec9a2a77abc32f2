"""Every registered benchmark still runs, at its smallest size (``routeq bench --smoke``).

The figures are not checked (they mean nothing at these sizes on a busy
machine); only that each benchmark exits 0 and writes a JSON document with
its environment. faust_pipeline needs a broker and runs in its own suite.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from benchmarks.runner import REGISTRY, available, run_one

SMOKE = [b for b in REGISTRY if b.smoke]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bench", SMOKE, ids=[b.name for b in SMOKE])
def test_benchmark_runs_at_smallest_size(bench, tmp_path: Path) -> None:
    why = available(bench)
    if why is not None:
        pytest.skip(why)
    out = tmp_path / f"{bench.name}.json"
    entry = run_one(bench, "smoke", out, log=lambda _m: None)
    assert entry["exit_code"] == 0, entry.get("output_tail")
    doc = orjson.loads(out.read_bytes())
    assert doc.get("git_commit") or doc.get("machine"), doc.keys()
    assert entry["load_average_before"] is not None


def test_runner_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.runner import main

    assert main(["--list"]) == 0
    assert "engine_apply" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--only", "no_such_benchmark"])
