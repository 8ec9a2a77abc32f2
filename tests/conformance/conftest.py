"""Prints, at the end of a run, what the conformance suite checked per runtime."""

from __future__ import annotations

from typing import Any

from tests.conformance.suite import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.write_sep("-", "conformance: examples, events and time per runtime")
    for runtime, t in TALLY.items():
        terminalreporter.write_line(
            f"{runtime:40} {int(t['examples']):5} streams {int(t['events']):7} events "
            f"{t['seconds']:7.1f} s")
