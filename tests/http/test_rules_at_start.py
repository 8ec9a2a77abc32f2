"""``routeq serve`` says at start which rules it runs (their hash) and when a
restart deployed new rules (issue 21, item 6)."""

from __future__ import annotations

from pathlib import Path

from engine import default_rules, rules_from_toml
from tests.http.server import Server


def test_serve_prints_the_rules_hash_and_a_new_deployment(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text("[assignment]\noffer_timeout_s = 20.0\n")
    new_hash = rules_from_toml(rules.read_text()).hash
    with Server(tmp_path):
        pass
    log = (tmp_path / "serve.log").read_text()
    assert f"routeq serve: rules {default_rules().hash} (built-in)" in log
    assert "new rules deployed" not in log
    with Server(tmp_path, "--rules", str(rules)):
        pass
    log = (tmp_path / "serve.log").read_text()
    assert f"routeq serve: rules {new_hash} ({rules})" in log
    assert f"routeq serve: new rules deployed: {new_hash}" in log
    with Server(tmp_path):  # no --rules: the state dir's, no new deployment
        pass
    last = (tmp_path / "serve.log").read_text()[len(log):]
    assert f"routeq serve: rules {new_hash} (recorded in the state dir)" in last
    assert "new rules deployed" not in last
