"""hypothesis-jsonschema's ``from_schema``, working with the Hypothesis installed.

hypothesis-jsonschema 0.23.1 (the latest release) draws an object's properties
with Hypothesis's internal ``cu.many(...)`` through ``.more()``; Hypothesis
6.170 replaced that with a context manager one iterates (``with many(...) as
elements: for _ in elements``), so every object schema failed with
``AttributeError: 'many' object has no attribute 'more'``. ``_Many`` gives the
old interface over the new one; nothing changes where Hypothesis still has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis_jsonschema._from_schema as _hjs
from hypothesis.internal.conjecture import utils as _cu
from hypothesis_jsonschema import from_schema


class _Many:
    def __init__(self, data: Any, **kw: Any) -> None:
        self._many = _cu.many(data, **kw)
        self._it: Iterator[None] | None = None

    def more(self) -> bool:
        if self._it is None:
            self._many.__enter__()
            self._it = iter(self._many)
        try:
            next(self._it)
        except StopIteration:
            self._many.__exit__(None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


class _Utils:
    many = _Many

    def __getattr__(self, name: str) -> Any:
        return getattr(_cu, name)


if not hasattr(_cu.many, "more"):
    _hjs.cu = _Utils()  # type: ignore[assignment]

__all__ = ["from_schema"]
