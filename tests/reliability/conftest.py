"""Tally of what the reliability tests tried, for RELIABILITY.md's figures.

Set ``ROUTEQ_RELIABILITY_REPORT=FILE`` to have the tally written there as JSON
at the end of the session (counts add up over the tests that ran)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

TALLY: Counter[str] = Counter()


@pytest.fixture(scope="session", autouse=True)
def _report_tally() -> Iterator[None]:
    yield
    path = os.environ.get("ROUTEQ_RELIABILITY_REPORT")
    if path:
        with open(path, "wb") as f:
            f.write(orjson.dumps(dict(sorted(TALLY.items())), option=orjson.OPT_INDENT_2))
