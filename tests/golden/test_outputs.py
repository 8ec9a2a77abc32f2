"""The commands' outputs are byte-for-byte those recorded in outputs.json."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.golden.outputs import RECORD, record

pytestmark = pytest.mark.slow


def test_outputs_are_byte_identical_to_the_recorded_ones(tmp_path: Path) -> None:
    want = orjson.loads(RECORD.read_bytes())
    got = record(tmp_path)
    assert got == want
