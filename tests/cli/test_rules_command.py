"""``routeq rules check FILE`` and ``routeq rules show [FILE]`` (issue 21,
item 6), and ``rules_to_toml``: the effective rules, defaults filled in, as
TOML that parses back to the same rules."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import given, settings

from engine import default_rules, parse_rules, rules_from_toml
from engine.rules import rules_to_toml
from tests.routeq import routeq
from tests.strategies import rules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules.toml"


def test_check_a_good_file_prints_its_hash_and_what_it_sets(tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text('[assignment]\nrequired_skills = ["after_sales"]\noffer_timeout_s = 20\n')
    proc = routeq("rules", "check", f)
    h = rules_from_toml(f.read_text()).hash
    text = proc.stdout.decode()
    assert proc.returncode == 0 and f"rules {h}" in text and str(f) in text
    assert "assignment.required_skills" in text and "assignment.offer_timeout_s" in text


def test_check_a_bad_file_names_the_key_and_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text('[assignment]\noffer_timeout_s = "soon"\n')
    proc = routeq("rules", "check", f, check=False)
    assert proc.returncode == 2
    assert "assignment.offer_timeout_s" in proc.stderr.decode() and str(f) in proc.stderr.decode()
    f.write_text("[assignment\n")
    proc = routeq("rules", "check", f, check=False)
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr.decode()
    proc = routeq("rules", "check", tmp_path / "missing.toml", check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr.decode()


def test_show_prints_the_effective_rules_as_toml(tmp_path: Path) -> None:
    proc = routeq("rules", "show")
    shown = proc.stdout.decode()
    assert rules_from_toml(shown).hash == default_rules().hash
    assert tomllib.loads(shown)["assignment"]["offer_timeout_s"] == 30.0
    assert f"# rules {default_rules().hash}" in shown
    f = tmp_path / "r.toml"
    f.write_text('policy = "least_loaded"\n[priority.pages]\nCheckout = 60\n')
    shown = routeq("rules", "show", f).stdout.decode()
    assert rules_from_toml(shown).hash == rules_from_toml(f.read_text()).hash
    pages = tomllib.loads(shown)["priority"]["pages"]
    assert pages["Checkout"] == 60.0 and pages["checkout"] == 50.0  # defaults merged in


def test_show_of_the_example_file_round_trips() -> None:
    r = rules_from_toml(EXAMPLE.read_text())
    assert rules_from_toml(rules_to_toml(r)).data == r.data


@settings(max_examples=100, deadline=None)
@given(rules())
def test_rules_to_toml_round_trips(r: object) -> None:
    from engine import Rules
    assert isinstance(r, Rules)
    back = rules_from_toml(rules_to_toml(r))
    assert back.data == r.data and back.hash == r.hash


def test_keys_that_need_quotes_round_trip() -> None:
    r = parse_rules({"skills": {"keywords": {"退款": "after_sales", "a b": "x", 'q"': "y"}},
                     "modes": {"tenants": {"shop.1": {"default": "robot_first"}}}})
    assert rules_from_toml(rules_to_toml(r)).data == r.data
