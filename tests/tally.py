"""Tally of what the reliability tests tried, for RELIABILITY.md's figures.

Set ``ROUTEQ_RELIABILITY_REPORT=FILE`` to have the tally written there as JSON
at the end of the session (counts add up over the tests that ran; the
session fixture in tests/conftest.py writes it)."""

from __future__ import annotations

import os
from collections import Counter

import orjson

TALLY: Counter[str] = Counter()


def write_report() -> None:
    path = os.environ.get("ROUTEQ_RELIABILITY_REPORT")
    if path:
        with open(path, "wb") as f:
            f.write(orjson.dumps(dict(sorted(TALLY.items())), option=orjson.OPT_INDENT_2))
