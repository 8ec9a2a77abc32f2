"""Routing rules: data, with a default for every key, validated on load.

The engine receives a ``Rules`` object; shells read the TOML file and call
``rules_from_toml(text)`` (or ``parse_rules(mapping)``). Errors name the key:
``rules: key 'assignment.offer_timeout_s' must be a number > 0, got "soon"``.
``examples/rules.toml`` shows every key with its default and a comment.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import orjson

from engine.hours import Hours, HoursError, check_hours, hours_of
from engine.steps import ANY, KINDS, SKILLED, TRANSFER, Step, derived, transfer_step

POLICIES = ("priority", "value", "fifo_round_robin", "least_loaded", "longest_idle")
MODES = ("human_only", "human_first", "robot_first", "robot_only")
AWAY_REQUEUES = ("unaccepted", "all", "none")


class RulesError(ValueError):
    """Invalid rules; the message names the key and what was expected."""


DEFAULTS: dict[str, Any] = {
    "policy": "priority",
    "platform": "platform",
    "priority": {
        "aging_per_s": 0.1,
        "returning": 15.0,
        "member": 10.0,
        "per_order": 1.0,
        "max_orders": 20,
        "per_1000_ltv": 2.0,
        "max_ltv_points": 20.0,
        "levels": [0.0, 2.0, 5.0, 10.0, 20.0, 40.0],
        "pages": {
            "home": 0.0,
            "list": 5.0,
            "search": 8.0,
            "detail": 15.0,
            "cart": 30.0,
            "checkout": 50.0,
            "order": 25.0,
            "after_sales": 20.0,
            "default": 0.0,
        },
    },
    "assignment": {
        "acceptance_required": False,
        "offer_timeout_s": 30.0,
        "sticky_wait_s": 60.0,
        "exclusive_wait_s": 120.0,
        "skill_required": False,
        "required_skills": [],
        "channel_required": False,
        "region_required": False,
        "away_requeues": "unaccepted",
        "max_missed_offers": 0,
        "wrap_up_s": 0.0,
        "offline_grace_s": 0.0,
        "eta_handle_s": 180.0,
        # the live service rate behind eta_s: its time constant (engine/eta.py)
        "eta_window_s": 300.0,
        # how long a transferred chat waits for the agent or skill it was sent to
        "transfer_wait_s": 60.0,
        "weights": {
            "skill": 10.0,
            "load": 20.0,
            "sticky": 50.0,
            "exclusive": 100.0,
            "region": 5.0,
            "channel": 5.0,
        },
    },
    "overflow": {"enabled": False, "after_s": 120.0, "tenants": []},
    # [[routing.steps]] (engine/steps.py); none: derived from the keys above
    "routing": {"steps": [], "tenants": {}},
    "skills": {
        "keywords": {
            "refund": "after_sales",
            "return": "after_sales",
            "broken": "after_sales",
            "退款": "after_sales",
            "退货": "after_sales",
            "invoice": "billing",
            "发票": "billing",
            "coupon": "sales",
            "优惠": "sales",
        },
        "pages": {
            "after_sales": "after_sales",
            "order": "after_sales",
            "checkout": "sales",
            "cart": "sales",
            "detail": "presales",
        },
        "search": {},
        "categories": {},
    },
    "modes": {"default": "human_first", "pages": {}, "tenants": {}},
    "dedup": {"window": 100_000, "window_s": 86_400.0},
    # units of an agent's capacity a chat of a skill holds (not named: 1)
    "capacity": {"weights": {}},
    # business hours by tenant (engine/hours.py); a tenant not named is always open
    "hours": {"tenants": {}},
    # policy "value": each page type's class (stake, handle_s, patience_s); a
    # chat's page part is its value index, scale x stake x patience_s / handle_s
    "value": {"loyalty": True, "scale": 1.0, "overflow_by_value": False, "pages": {}},
}
VALUE_CLASS_KEYS = ("stake", "handle_s", "patience_s")


def _show(v: object) -> str:
    try:
        return orjson.dumps(v).decode()[:60]
    except TypeError:
        return repr(v)[:60]


def _number(lo: float, lo_open: bool = False) -> Callable[[str, object], float]:
    def check(key: str, v: object) -> float:
        ok = (type(v) in (int, float) and (v > lo if lo_open else v >= lo)  # type: ignore[operator]
              and math.isfinite(v))  # type: ignore[arg-type]
        if not ok:
            op = ">" if lo_open else ">="
            raise RulesError(f"rules: key '{key}' must be a number {op} {lo:g}, got {_show(v)}")
        return float(v)  # type: ignore[arg-type]

    return check


def _int(lo: int) -> Callable[[str, object], int]:
    def check(key: str, v: object) -> int:
        if not (type(v) is int and v >= lo):
            raise RulesError(f"rules: key '{key}' must be an integer >= {lo}, got {_show(v)}")
        return v

    return check


def _bool(key: str, v: object) -> bool:
    if type(v) is not bool:
        raise RulesError(f"rules: key '{key}' must be true or false, got {_show(v)}")
    return v


def _choice(options: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(key: str, v: object) -> str:
        if v not in options:
            raise RulesError(
                f"rules: key '{key}' must be one of {', '.join(options)}, got {_show(v)}"
            )
        return str(v)

    return check


def _string(key: str, v: object) -> str:
    if not (type(v) is str and v):
        raise RulesError(f"rules: key '{key}' must be a non-empty string, got {_show(v)}")
    return v


def _strings(key: str, v: object) -> list[str]:
    if not (type(v) is list and all(type(x) is str and x for x in v)):
        raise RulesError(f"rules: key '{key}' must be a list of strings, got {_show(v)}")
    return list(v)


def _levels(key: str, v: object) -> list[float]:
    if not (type(v) is list and len(v) == 6 and all(type(x) in (int, float) for x in v)):
        raise RulesError(
            f"rules: key '{key}' must be a list of 6 numbers (bonus for tiers 0-5), got {_show(v)}"
        )
    return [float(x) for x in v]


def _map(value_check: Callable[[str, object], Any]) -> Callable[[str, object], dict[str, Any]]:
    def check(key: str, v: object) -> dict[str, Any]:
        if type(v) is not dict:
            raise RulesError(f"rules: key '{key}' must be a table, got {_show(v)}")
        return {str(k): value_check(f"{key}.{k}", x) for k, x in v.items()}

    return check


def _hours(key: str, v: object) -> dict[str, Any]:
    try:
        return check_hours(key, v)
    except HoursError as exc:
        raise RulesError(str(exc)) from None


def _tenant_mode(key: str, v: object) -> dict[str, Any]:
    if type(v) is not dict:
        raise RulesError(f"rules: key '{key}' must be a table with default and pages")
    out: dict[str, Any] = {}
    for k, x in v.items():
        if k == "default":
            out["default"] = _choice(MODES)(f"{key}.default", x)
        elif k == "pages":
            out["pages"] = _map(_choice(MODES))(f"{key}.pages", x)
        else:
            raise RulesError(f"rules: unknown key '{key}.{k}' (expected default, pages)")
    return out


def _value_class(key: str, v: object) -> dict[str, float]:
    """One page type's class under policy ``value``: what a chat there is worth
    (``stake``: mean order value x order rate after a chat), its mean handle
    time and its visitors' mean patience."""
    if type(v) is not dict or set(v) != set(VALUE_CLASS_KEYS):
        raise RulesError(f"rules: key '{key}' must be a table of stake, handle_s and "
                         f"patience_s, got {_show(v)}")
    out = {"stake": _number(0)(f"{key}.stake", v["stake"])}
    for k in ("handle_s", "patience_s"):
        out[k] = _number(0, lo_open=True)(f"{key}.{k}", v[k])
    return out


STEP_KEYS = ("name", "agents", "timeout_s", "min_level", "predictive", "tenant")
#: the longest time a routing step or a transfer may wait, in seconds (a year:
#: its deadline must stay a 64-bit integer of milliseconds when persisted)
MAX_WAIT_S = 31_536_000.0


def _wait_s(key: str, v: object) -> float:
    """A step's or a transfer's time: 0 (no bound) or at least a millisecond."""
    x = _number(0)(key, v)
    if x and not 0.001 <= x <= MAX_WAIT_S:
        raise RulesError(f"rules: key '{key}' must be 0 or a number of seconds from 0.001 "
                         f"to {MAX_WAIT_S:g}, got {_show(v)}")
    return x


def _step(key: str, v: object) -> dict[str, Any]:
    """One ``[[routing.steps]]`` table, every key filled in (``tenant`` only if given)."""
    if type(v) is not dict:
        raise RulesError(f"rules: key '{key}' must be a table, got {_show(v)}")
    for k in v:
        if k not in STEP_KEYS:
            raise RulesError(f"rules: unknown key '{key}.{k}' (expected one of "
                             f"{', '.join(STEP_KEYS)})")
    for k in ("name", "agents"):
        if k not in v:
            raise RulesError(f"rules: key '{key}.{k}' is missing")
    out: dict[str, Any] = {"name": _string(f"{key}.name", v["name"]),
                           "agents": _choice(KINDS)(f"{key}.agents", v["agents"])}
    if out["name"] == TRANSFER or len(out["name"]) > 128:
        raise RulesError(f"rules: key '{key}.name' must be a name of at most 128 characters "
                         f"other than {TRANSFER!r} (a transfer's own step), got {_show(v['name'])}")
    out["timeout_s"] = _wait_s(f"{key}.timeout_s", v.get("timeout_s", 0.0))
    if out["agents"] == SKILLED:
        out["min_level"] = _int(1)(f"{key}.min_level", v.get("min_level", 1))
        if out["min_level"] > 5:
            raise RulesError(f"rules: key '{key}.min_level' must be a skill level 1-5, got "
                             f"{_show(v['min_level'])}")
    elif "min_level" in v:
        raise RulesError(f"rules: key '{key}.min_level' applies to agents = \"skilled\" only")
    out["predictive"] = _bool(f"{key}.predictive", v.get("predictive", False))
    if out["predictive"] and out["agents"] not in ("skilled", "any"):
        raise RulesError(f"rules: key '{key}.predictive' applies to skilled and any steps "
                         "(a reserved chat waits for one agent)")
    if out["predictive"] and not out["timeout_s"]:
        raise RulesError(f"rules: key '{key}.predictive' needs a timeout_s > 0 (the wait "
                         "the prediction is held to)")
    if "tenant" in v:
        out["tenant"] = _string(f"{key}.tenant", v["tenant"])
    return out


def _steps(key: str, v: object) -> list[dict[str, Any]]:
    if type(v) is not list:
        raise RulesError(f"rules: key '{key}' must be a list of tables, got {_show(v)}")
    steps = [_step(f"{key}[{i}]", x) for i, x in enumerate(v)]
    names = [s["name"] for s in steps]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise RulesError(f"rules: key '{key}[{i}].name' repeats the step name {name!r}")
    return steps


def _tenant_routing(key: str, v: object) -> dict[str, Any]:
    if type(v) is not dict:
        raise RulesError(f"rules: key '{key}' must be a table with steps, got {_show(v)}")
    for k in v:
        if k != "steps":
            raise RulesError(f"rules: unknown key '{key}.{k}' (expected steps)")
    if "steps" not in v:
        raise RulesError(f"rules: key '{key}.steps' is missing")
    steps = _steps(f"{key}.steps", v["steps"])
    if not steps:
        raise RulesError(f"rules: key '{key}.steps' must name at least one step")
    return {"steps": steps}


SPEC: dict[str, Any] = {
    "policy": _choice(POLICIES),
    "platform": _string,
    "priority": {
        "aging_per_s": _number(0),
        "returning": _number(0),
        "member": _number(0),
        "per_order": _number(0),
        "max_orders": _int(0),
        "per_1000_ltv": _number(0),
        "max_ltv_points": _number(0),
        "levels": _levels,
        "pages": _map(_number(0)),
    },
    "assignment": {
        "acceptance_required": _bool,
        "offer_timeout_s": _number(0, lo_open=True),
        "sticky_wait_s": _number(0),
        "exclusive_wait_s": _number(0),
        "skill_required": _bool,
        "required_skills": _strings,
        "channel_required": _bool,
        "region_required": _bool,
        "away_requeues": _choice(AWAY_REQUEUES),
        "max_missed_offers": _int(0),
        "wrap_up_s": _number(0),
        "offline_grace_s": _number(0),
        "eta_handle_s": _number(0, lo_open=True),
        "eta_window_s": _number(0, lo_open=True),
        "transfer_wait_s": _wait_s,
        "weights": {k: _number(0) for k in DEFAULTS["assignment"]["weights"]},
    },
    "overflow": {"enabled": _bool, "after_s": _number(0), "tenants": _strings},
    "routing": {"steps": _steps, "tenants": _map(_tenant_routing)},
    "skills": {
        "keywords": _map(_string),
        "pages": _map(_string),
        "search": _map(_string),
        "categories": _map(_string),
    },
    "modes": {
        "default": _choice(MODES),
        "pages": _map(_choice(MODES)),
        "tenants": _map(_tenant_mode),
    },
    "dedup": {"window": _int(1), "window_s": _number(0, lo_open=True)},
    "capacity": {"weights": _map(_int(1))},
    "hours": {"tenants": _map(_hours)},
    "value": {"loyalty": _bool, "scale": _number(0), "overflow_by_value": _bool,
              "pages": _map(_value_class)},
}

# maps whose entries a rules file adds to the defaults; every other map given in
# a rules file replaces its default entirely (so a default keyword can be dropped)
_MERGED_MAPS = {"priority.pages"}


def _merge(spec: dict[str, Any], defaults: dict[str, Any], data: object, path: str) -> Any:
    if type(data) is not dict:
        raise RulesError(f"rules: key '{path or '(top)'}' must be a table, got {_show(data)}")
    out: dict[str, Any] = {}
    for key, check in spec.items():
        full = f"{path}.{key}" if path else key
        if isinstance(check, dict):
            out[key] = _merge(check, defaults[key], data.get(key, {}), full)
        elif key in data and full in _MERGED_MAPS and type(data[key]) is dict:
            out[key] = check(full, {**defaults[key], **data[key]})
        elif key in data:
            out[key] = check(full, data[key])
        else:
            out[key] = check(full, defaults[key])
    for key in data:
        if key not in spec:
            full = f"{path}.{key}" if path else key
            raise RulesError(f"rules: unknown key '{full}' (expected one of {', '.join(spec)})")
    return out


@dataclass(frozen=True, slots=True)
class Rules:
    """Parsed, validated rules. ``data`` is the full normalised tree."""

    data: dict[str, Any]
    hash: str
    policy: str
    platform: str
    aging_per_ms: float
    returning: float
    member: float
    per_order: float
    max_orders: int
    per_1000_ltv: float
    max_ltv_points: float
    levels: tuple[float, ...]
    page_weights: dict[str, float]
    page_default: float
    acceptance_required: bool
    offer_timeout_ms: int
    sticky_wait_ms: int
    exclusive_wait_ms: int
    skill_required: bool
    required_skills: frozenset[str]
    channel_required: bool
    region_required: bool
    away_requeues: str
    max_missed_offers: int  # 0: never set away for missed offers
    wrap_up_ms: int
    offline_grace_ms: int
    eta_handle_s: float
    eta_window_ms: int
    w_skill: float
    w_load: float
    w_sticky: float
    w_exclusive: float
    w_region: float
    w_channel: float
    overflow_enabled: bool
    overflow_after_ms: int
    overflow_tenants: frozenset[str]
    skill_keywords: tuple[tuple[str, str], ...]
    skill_pages: dict[str, str]
    skill_search: tuple[tuple[str, str], ...]
    skill_categories: dict[str, str]
    mode_default: str
    mode_pages: dict[str, str]
    mode_tenants: dict[str, dict[str, Any]]
    dedup_window: int
    dedup_window_ms: int
    capacity_weights: dict[str, int]  # skill -> units a chat of it holds (else 1)
    hours: dict[str, Hours]  # tenant -> business hours (not named: always open)
    # policy "value": page -> (stake, handle_s, patience_s) ("default" for the rest)
    value_classes: dict[str, tuple[float, float, float]]
    # policy "value" with overflow_by_value: page -> its overflow wait (else after_s)
    overflow_ms_by_page: dict[str, int]
    transfer_wait_ms: int
    steps: tuple[Step, ...]  # every tenant's but those with their own
    tenant_steps: dict[str, tuple[Step, ...]]
    steps_given: bool  # [[routing.steps]] named; else derived from the older keys
    predictive: bool  # some step is predictive (the engine checks them then only)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled field by field into the constructor: compiled by mypyc, a
        # frozen class refuses the setattr that default unpickling does
        # (compare and tune send rules to their worker processes)
        return (Rules, tuple(getattr(self, f.name) for f in fields(Rules)))

    def mode_for(self, tenant: str, page: str | None) -> str:
        """The service mode for a chat requested by a visitor of ``tenant`` on ``page``."""
        t = self.mode_tenants.get(tenant)
        if t is not None:
            if page is not None and page in t.get("pages", {}):
                return str(t["pages"][page])
            if page is not None and page in self.mode_pages:
                return self.mode_pages[page]
            if "default" in t:
                return str(t["default"])
        elif page is not None and page in self.mode_pages:
            return self.mode_pages[page]
        return self.mode_default

    def overflow_ms(self, page: str | None) -> int:
        """How long a chat asked from ``page`` waits before it overflows."""
        if page is None:
            return self.overflow_after_ms
        return self.overflow_ms_by_page.get(page, self.overflow_after_ms)

    def value_class(self, page: str | None) -> tuple[float, float, float] | None:
        """Under policy ``value``, the class of a chat asked from ``page``."""
        c = self.value_classes
        return c.get(page, c.get("default")) if page is not None else c.get("default")

    def page_weight(self, page: str | None) -> float:
        if page is None:
            return self.page_default
        return self.page_weights.get(page, self.page_default)

    def requires(self, skill: str | None) -> bool:
        """Whether a chat needing ``skill`` may go only to an agent who has it
        (``skill_required`` for every skill, ``required_skills`` for these)."""
        return skill is not None and (self.skill_required or skill in self.required_skills)

    @property
    def any_required(self) -> bool:
        """Some skill is required: chats of required skills wait in their
        skill's queue."""
        return self.skill_required or bool(self.required_skills)

    def steps_for(self, tenant: str) -> tuple[Step, ...]:
        """The routing steps of ``tenant``'s chats."""
        return self.tenant_steps.get(tenant, self.steps)

    def step_at(self, tenant: str, index: int, transfer_to: str | None) -> Step:
        """Step ``index`` of ``tenant``'s (-1: a transfer's own, to ``transfer_to`` or
        the chat's skill; past the last: the last's name, for anyone)."""
        if index < 0:
            return transfer_step(transfer_to, self.transfer_wait_ms)
        steps = self.steps_for(tenant)
        if index < len(steps):
            return steps[index]
        return Step(steps[-1].name, ANY)

    def may_overflow(self, tenant: str) -> bool:
        if not self.overflow_enabled or tenant == self.platform:
            return False
        return not self.overflow_tenants or tenant in self.overflow_tenants


#: keys added after the first release: left out of the hash while they hold
#: their default, so that a rules file that does not use them keeps its hash
_LATER_KEYS: tuple[tuple[str, str], ...] = (
    ("assignment", "required_skills"), ("dedup", "window_s"),
    ("assignment", "max_missed_offers"), ("assignment", "wrap_up_s"),
    ("assignment", "offline_grace_s"), ("capacity", "weights"), ("hours", "tenants"),
    ("value", "loyalty"), ("value", "scale"), ("value", "pages"),
    ("value", "overflow_by_value"), ("assignment", "transfer_wait_s"),
    ("assignment", "eta_window_s"), ("routing", "steps"), ("routing", "tenants"))


def rules_hash(tree: Mapping[str, Any]) -> str:
    """12 hex digits identifying a normalised rules tree (``Rules.hash``)."""
    hashed = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    for table, key in _LATER_KEYS:
        if hashed.get(table, {}).get(key) == DEFAULTS[table][key]:
            del hashed[table][key]
            if not hashed[table]:
                del hashed[table]  # a later table left at its defaults
    return hashlib.sha256(orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def parse_rules(data: Mapping[str, Any] | None = None) -> Rules:
    """Validate a rules mapping (as from TOML) over the defaults."""
    tree = _merge(SPEC, DEFAULTS, dict(data or {}), "")
    digest = rules_hash(tree)
    p, a, o, s, m = (tree[k] for k in ("priority", "assignment", "overflow", "skills", "modes"))
    w = a["weights"]
    pages = dict(p["pages"])
    page_default = float(pages.pop("default", 0.0))
    v = tree["value"]
    classes = {page: (c["stake"], c["handle_s"], c["patience_s"])
               for page, c in v["pages"].items()}
    loyalty = (p["member"], p["per_order"], p["per_1000_ltv"])
    if tree["policy"] == "value":
        # the page part of a chat's priority is its class's value index (the
        # c mu / theta of Atar, Giat & Shimkin 2010): the same queue, keyed anew
        index = {page: round(v["scale"] * st * pat / h, 3)
                 for page, (st, h, pat) in classes.items()}
        page_default = index.pop("default", 0.0)
        pages = index
        if not v["loyalty"]:
            loyalty = (0.0, 0.0, 0.0)
    routing = tree["routing"]
    steps = tuple(_step_of(f"routing.steps[{i}]", d, tree["platform"])
                  for i, d in enumerate(routing["steps"])) or derived(
        tree["policy"] in ("priority", "value"), round(a["exclusive_wait_s"] * 1000),
        round(a["sticky_wait_s"] * 1000))
    tenant_steps = {name: tuple(_step_of(f"routing.tenants.{name}.steps[{i}]", d,
                                         tree["platform"]) for i, d in enumerate(r["steps"]))
                    for name, r in routing["tenants"].items()}
    return Rules(
        data=tree,
        hash=digest,
        policy=tree["policy"],
        platform=tree["platform"],
        aging_per_ms=p["aging_per_s"] / 1000.0,
        returning=p["returning"],
        member=loyalty[0],
        per_order=loyalty[1],
        max_orders=p["max_orders"],
        per_1000_ltv=loyalty[2],
        max_ltv_points=p["max_ltv_points"],
        levels=tuple(p["levels"]),
        page_weights=pages,
        page_default=page_default,
        acceptance_required=a["acceptance_required"],
        offer_timeout_ms=round(a["offer_timeout_s"] * 1000),
        sticky_wait_ms=round(a["sticky_wait_s"] * 1000),
        exclusive_wait_ms=round(a["exclusive_wait_s"] * 1000),
        skill_required=a["skill_required"],
        required_skills=frozenset(a["required_skills"]),
        channel_required=a["channel_required"],
        region_required=a["region_required"],
        away_requeues=a["away_requeues"],
        max_missed_offers=a["max_missed_offers"],
        wrap_up_ms=round(a["wrap_up_s"] * 1000),
        offline_grace_ms=round(a["offline_grace_s"] * 1000),
        eta_handle_s=a["eta_handle_s"],
        eta_window_ms=max(1, round(a["eta_window_s"] * 1000)),
        w_skill=w["skill"],
        w_load=w["load"],
        w_sticky=w["sticky"],
        w_exclusive=w["exclusive"],
        w_region=w["region"],
        w_channel=w["channel"],
        overflow_enabled=o["enabled"],
        overflow_after_ms=round(o["after_s"] * 1000),
        overflow_tenants=frozenset(o["tenants"]),
        skill_keywords=tuple((k.lower(), v) for k, v in s["keywords"].items()),
        skill_pages=dict(s["pages"]),
        skill_search=tuple((k.lower(), v) for k, v in s["search"].items()),
        skill_categories=dict(s["categories"]),
        mode_default=m["default"],
        mode_pages=dict(m["pages"]),
        mode_tenants=dict(m["tenants"]),
        dedup_window=tree["dedup"]["window"],
        dedup_window_ms=round(tree["dedup"]["window_s"] * 1000),
        capacity_weights=dict(tree["capacity"]["weights"]),
        hours={name: hours_of(h) for name, h in tree["hours"]["tenants"].items()},
        value_classes=classes if tree["policy"] == "value" else {},
        overflow_ms_by_page=(_overflow_by_value(classes, o["after_s"])
                             if tree["policy"] == "value" and v["overflow_by_value"] else {}),
        transfer_wait_ms=round(a["transfer_wait_s"] * 1000),
        steps=steps,
        tenant_steps=tenant_steps,
        steps_given=bool(routing["steps"]),
        predictive=any(s.predictive for ss in (steps, *tenant_steps.values()) for s in ss),
    )


def _step_of(key: str, d: dict[str, Any], platform: str) -> Step:
    tenant = d.get("tenant")
    if tenant is not None and tenant != platform:
        raise RulesError(f"rules: key '{key}.tenant' must be the platform tenant "
                         f"{platform!r} (a chat overflows to the platform only), got "
                         f"{_show(tenant)}")
    return Step(d["name"], d["agents"], round(d["timeout_s"] * 1000), d.get("min_level", 1),
                d["predictive"], tenant)


def _overflow_by_value(classes: dict[str, tuple[float, float, float]],
                       after_s: float) -> dict[str, int]:
    """Each class's overflow wait: a chat overflows once the value it has put at
    risk by waiting (stake x wait / patience: the chance it has had to give
    up, times what it is worth) reaches what a ``default`` chat's has at
    ``after_s``; never later than ``after_s``."""
    ref = classes.get("default")
    if ref is None or ref[0] <= 0:
        return {}
    ref_rate = ref[0] / ref[2]
    out = {}
    for page, (stake, _, patience) in classes.items():
        rate = stake / patience
        out[page] = round(after_s * 1000 * min(1.0, ref_rate / rate)) if rate > 0 else \
            round(after_s * 1000)
    return out


def rules_from_toml(text: str) -> Rules:
    """Parse rules from TOML text (the shell reads the file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules: not valid TOML ({exc})") from None
    return parse_rules(data)


def default_rules() -> Rules:
    return parse_rules({})


# ------------------------------------------------------------------ as TOML

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _toml_key(key: str) -> str:
    return key if key and set(key) <= _BARE else _toml_value(key)


def _toml_value(v: object) -> str:
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return repr(v)  # 0.1, 1e+20, inf: TOML floats as Python writes them
    if type(v) is str:  # a TOML basic string: JSON's escapes are TOML's
        return orjson.dumps(v).decode()
    if type(v) is list:
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if type(v) is dict:  # an inline table (a routing step)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {v!r}")


def rules_to_toml(rules: Rules) -> str:
    """The effective rules (every key, defaults filled in) as TOML text that
    ``rules_from_toml`` reads back to the same rules (``routeq rules show``)."""
    lines = [f"# rules {rules.hash}: every key, defaults included"]

    def table(path: list[str], tree: Mapping[str, Any]) -> None:
        subs = [(k, v) for k, v in tree.items() if isinstance(v, dict)]
        plain = [(k, v) for k, v in tree.items() if not isinstance(v, dict)]
        if path and (plain or not subs):
            lines.append("")
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in plain)
        for k, v in subs:
            table([*path, k], v)

    table([], rules.data)
    return "\n".join(lines) + "\n"
