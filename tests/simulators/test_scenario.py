"""Scenario files: lookup, overrides from the command line, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import parse_rules
from simulators.scenario import ScenarioError, apply_param, bundled, load_scenario
from simulators.simulation import Simulation
from streams.cli import main


def test_bundled_scenarios_are_there() -> None:
    assert set(bundled()) >= {"demo", "double11", "marketplace", "erlang_c", "erlang_a"}


def test_unknown_scenario_names_the_bundled_ones() -> None:
    with pytest.raises(ScenarioError, match="not found.*demo"):
        load_scenario("nope")


def test_params_override_keys_and_list_items() -> None:
    sc = load_scenario("demo", ["chat.patience_s=45.5", "tenants.0.agents.1.count=2",
                                "traffic.channels={ web = 1.0 }", "description=hello there"])
    assert sc["chat"]["patience_s"] == 45.5
    assert sc["tenants"][0]["agents"][1]["count"] == 2
    assert sc["traffic"]["channels"] == {"web": 1.0}
    assert sc["description"] == "hello there"


@pytest.mark.parametrize(("param", "message"), [
    ("nonsense", "key.path=value"),
    ("tenants.5.name=x", "'tenants.5' is not an index"),
    ("hours.x=1", "'hours' is a value, not a table"),
])
def test_bad_params_are_refused(param: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        apply_param(load_scenario("demo"), param)


def test_missing_or_mistyped_keys_are_named() -> None:
    sc = load_scenario("erlang_c")
    del sc["queue"]["agents"]
    with pytest.raises(ScenarioError, match="'queue.agents' is required"):
        Simulation(sc, parse_rules(sc["rules"]))
    sc = load_scenario("demo", ["chat.handle_s=\"long\""])
    with pytest.raises(ScenarioError, match="'chat.handle_s' must be a number"):
        Simulation(sc, parse_rules(sc["rules"]))


def test_a_scenario_file_path_works(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        (Path(__file__).resolve().parents[2] / "simulators/scenarios/erlang_c.toml").read_text()
    )
    out = tmp_path / "out"
    assert main(["simulate", "--scenario", str(path), "--hours", "0.5", "--agents", "3",
                 "--erlangs", "2", "--handle-s", "20", "--out", str(out), "--quiet"]) == 0
    assert (out / "summary.json").exists()


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "nope", "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[assignment]\noffer_timeout_s = \"soon\"\n")
    assert main(["simulate", "--scenario", "demo", "--rules", str(bad),
                 "--out", str(tmp_path)]) == 2
    assert "assignment.offer_timeout_s" in capsys.readouterr().err
