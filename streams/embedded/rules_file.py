"""Reading a rules file (the engine gets parsed rules, never a path)."""

from __future__ import annotations

from pathlib import Path

from engine import Rules, RulesError, default_rules, rules_from_toml


def load_rules(path: str | None) -> Rules:
    return read_rules(path)[0]


def read_rules(path: str | None) -> tuple[Rules, str]:
    """The parsed rules and their TOML text ("" for the defaults)."""
    if path is None:
        return default_rules(), ""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None
    except UnicodeDecodeError:
        raise RulesError(f"rules file is not UTF-8 text: {path}") from None
    except IsADirectoryError:
        raise RulesError(f"rules file is a directory: {path}") from None
    try:
        return rules_from_toml(text), text
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from None
