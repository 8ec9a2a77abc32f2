"""The commands' outputs are byte-for-byte those recorded in outputs.json."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.golden.outputs import RECORD, record

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("core", ["as installed", "pure"])
def test_outputs_are_byte_identical_to_the_recorded_ones(tmp_path: Path, core: str) -> None:
    """Both cores give the recorded bytes: the compiled one (``make test``
    builds it) and the same source as plain Python (``ROUTEQ_PURE=1``)."""
    want = orjson.loads(RECORD.read_bytes())
    got = record(tmp_path, {"ROUTEQ_PURE": "1"} if core == "pure" else {})
    assert got == want
