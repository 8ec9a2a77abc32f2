"""Rules: defaults, validation errors that name the key, TOML, derived values."""

from __future__ import annotations

import copy

import pytest

from engine import RulesError, default_rules, parse_rules, rules_from_toml
from engine.rules import DEFAULTS, MODES, POLICIES


def error_of(data: dict[str, object]) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(data)
    return str(info.value)


# ----------------------------------------------------------------- defaults


def test_defaults_are_valid_and_complete() -> None:
    r = default_rules()
    assert r.data == DEFAULTS
    assert parse_rules(None) == r == parse_rules({})
    assert parse_rules(copy.deepcopy(DEFAULTS)) == r  # the defaults, given explicitly
    assert r.policy == "priority" and r.platform == "platform"
    assert r.mode_default == "human_first"
    assert not r.acceptance_required and not r.overflow_enabled


def test_derived_values_are_in_ms() -> None:
    r = parse_rules({
        "priority": {"aging_per_s": 0.5},
        "assignment": {"offer_timeout_s": 12.5, "sticky_wait_s": 30, "exclusive_wait_s": 0},
        "overflow": {"enabled": True, "after_s": 90},
    })
    assert r.aging_per_ms == 0.0005
    assert (r.offer_timeout_ms, r.sticky_wait_ms, r.exclusive_wait_ms) == (12_500, 30_000, 0)
    assert r.overflow_after_ms == 90_000


def test_hash_is_stable_and_tracks_content() -> None:
    a = default_rules()
    assert a.hash == parse_rules({}).hash == rules_from_toml("").hash
    assert len(a.hash) == 12 and int(a.hash, 16) >= 0
    # the same values written differently give the same hash
    assert parse_rules({"assignment": {"offer_timeout_s": 30}}).hash == a.hash
    assert parse_rules({"assignment": {"offer_timeout_s": 31}}).hash != a.hash
    assert parse_rules({"policy": "least_loaded"}).hash != a.hash


# ------------------------------------------------------------- bad values


def test_bad_value_names_the_key() -> None:
    assert error_of({"assignment": {"offer_timeout_s": "soon"}}) == (
        "rules: key 'assignment.offer_timeout_s' must be a number > 0, got \"soon\""
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"assignment": {"offer_timeout_s": 0}},
         "rules: key 'assignment.offer_timeout_s' must be a number > 0, got 0"),
        ({"assignment": {"sticky_wait_s": -1}},
         "rules: key 'assignment.sticky_wait_s' must be a number >= 0, got -1"),
        ({"assignment": {"acceptance_required": "yes"}},
         "rules: key 'assignment.acceptance_required' must be true or false, got \"yes\""),
        ({"assignment": {"weights": {"load": True}}},
         "rules: key 'assignment.weights.load' must be a number >= 0, got true"),
        ({"priority": {"max_orders": 2.5}},
         "rules: key 'priority.max_orders' must be an integer >= 0, got 2.5"),
        ({"priority": {"levels": [0, 1, 2]}},
         "rules: key 'priority.levels' must be a list of 6 numbers (bonus for tiers 0-5), "
         "got [0,1,2]"),
        ({"priority": {"pages": {"cart": "high"}}},
         "rules: key 'priority.pages.cart' must be a number >= 0, got \"high\""),
        ({"policy": "random"},
         "rules: key 'policy' must be one of " + ", ".join(POLICIES) + ", got \"random\""),
        ({"modes": {"pages": {"cart": "bot"}}},
         "rules: key 'modes.pages.cart' must be one of " + ", ".join(MODES) + ", got \"bot\""),
        ({"modes": {"tenants": {"acme": {"default": "bot"}}}},
         "rules: key 'modes.tenants.acme.default' must be one of " + ", ".join(MODES)
         + ", got \"bot\""),
        ({"skills": {"keywords": {"refund": ""}}},
         "rules: key 'skills.keywords.refund' must be a non-empty string, got \"\""),
        ({"overflow": {"tenants": "acme"}},
         "rules: key 'overflow.tenants' must be a list of strings, got \"acme\""),
        ({"platform": ""}, "rules: key 'platform' must be a non-empty string, got \"\""),
        ({"dedup": {"window": 0}}, "rules: key 'dedup.window' must be an integer >= 1, got 0"),
        ({"assignment": 5}, "rules: key 'assignment' must be a table, got 5"),
        ({"skills": {"pages": ["after_sales"]}},
         "rules: key 'skills.pages' must be a table, got [\"after_sales\"]"),
    ],
)
def test_bad_values(data: dict[str, object], expected: str) -> None:
    assert error_of(data) == expected


def test_unknown_keys_are_rejected() -> None:
    assert error_of({"assignment": {"offer_timeout": 30}}).startswith(
        "rules: unknown key 'assignment.offer_timeout' (expected one of acceptance_required, "
    )
    assert error_of({"polcy": "fifo_round_robin"}).startswith("rules: unknown key 'polcy'")
    assert error_of({"assignment": {"weights": {"speed": 1}}}).startswith(
        "rules: unknown key 'assignment.weights.speed'"
    )
    assert error_of({"modes": {"tenants": {"acme": {"page": {}}}}}) == (
        "rules: unknown key 'modes.tenants.acme.page' (expected default, pages)"
    )


# ---------------------------------------------------------------- merging


def test_page_weights_add_to_defaults_but_other_maps_replace() -> None:
    r = parse_rules({
        "priority": {"pages": {"live": 12, "cart": 40}},
        "skills": {"keywords": {"warranty": "after_sales"}},
    })
    assert r.page_weights["live"] == 12 and r.page_weights["cart"] == 40
    assert r.page_weights["checkout"] == 50  # default kept
    assert r.skill_keywords == (("warranty", "after_sales"),)  # defaults dropped


def test_page_weight_of_unknown_or_missing_page_is_the_default() -> None:
    r = parse_rules({"priority": {"pages": {"default": 3}}})
    assert r.page_weight("no_such_page") == 3 and r.page_weight(None) == 3
    assert r.page_weight("checkout") == 50
    assert "default" not in r.page_weights


def test_keywords_are_matched_lowercase() -> None:
    r = parse_rules({"skills": {"keywords": {"RMA": "after_sales"},
                                "search": {"EarBuds": "audio"}}})
    assert r.skill_keywords == (("rma", "after_sales"),)
    assert r.skill_search == (("earbuds", "audio"),)


def test_mode_for_precedence() -> None:
    r = parse_rules({"modes": {
        "default": "human_first",
        "pages": {"home": "robot_first", "cart": "human_only"},
        "tenants": {
            "acme": {"default": "robot_only", "pages": {"cart": "robot_first"}},
            "zeta": {"pages": {"order": "robot_only"}},
        },
    }})
    assert r.mode_for("acme", "cart") == "robot_first"  # tenant page
    assert r.mode_for("acme", "home") == "robot_first"  # global page
    assert r.mode_for("acme", "detail") == "robot_only"  # tenant default
    assert r.mode_for("acme", None) == "robot_only"
    assert r.mode_for("zeta", "detail") == "human_first"  # global default
    assert r.mode_for("zeta", "order") == "robot_only"
    assert r.mode_for("other", "cart") == "human_only"
    assert r.mode_for("other", None) == "human_first"


def test_may_overflow() -> None:
    assert not default_rules().may_overflow("acme")
    on = parse_rules({"overflow": {"enabled": True}})
    assert on.may_overflow("acme") and not on.may_overflow("platform")
    some = parse_rules({"overflow": {"enabled": True, "tenants": ["acme"]}, "platform": "mall"})
    assert some.may_overflow("acme") and not some.may_overflow("zeta")
    assert not some.may_overflow("mall")


# ------------------------------------------------------------------- TOML


def test_rules_from_toml() -> None:
    r = rules_from_toml(
        """
        policy = "least_loaded"
        platform = "mall"

        [assignment]
        acceptance_required = true
        offer_timeout_s = 20

        [assignment.weights]
        load = 35

        [priority.pages]
        live = 7.5

        [skills.categories]
        audio = "audio"

        [modes]
        default = "robot_first"
        pages = { checkout = "human_only" }

        [modes.tenants.acme]
        default = "human_only"

        [overflow]
        enabled = true
        after_s = 45
        tenants = ["acme"]
        """
    )
    assert r.policy == "least_loaded" and r.platform == "mall"
    assert r.acceptance_required and r.offer_timeout_ms == 20_000
    assert r.w_load == 35 and r.w_skill == DEFAULTS["assignment"]["weights"]["skill"]
    assert r.page_weights["live"] == 7.5
    assert r.skill_categories == {"audio": "audio"}
    assert r.mode_for("zeta", "home") == "robot_first"
    assert r.mode_for("zeta", "checkout") == "human_only"
    assert r.mode_for("acme", "home") == "human_only"
    assert r.overflow_after_ms == 45_000 and r.overflow_tenants == frozenset({"acme"})


def test_toml_errors() -> None:
    with pytest.raises(RulesError) as info:
        rules_from_toml("policy = ")
    assert str(info.value).startswith("rules: not valid TOML (")
    with pytest.raises(RulesError) as info:
        rules_from_toml("[assignment]\noffer_timeout_s = 'soon'\n")
    assert str(info.value) == (
        "rules: key 'assignment.offer_timeout_s' must be a number > 0, got \"soon\""
    )
    with pytest.raises(RulesError, match=r"unknown key 'overflow\.after'"):
        rules_from_toml("[overflow]\nafter = 10\n")
