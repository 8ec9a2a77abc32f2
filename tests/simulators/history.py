"""A hand-written history, as a chat server would send it (for the what-if's
tests: the null test and the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

T0 = 1_800_000_000_000


class History:
    """``h(type, at_s, **fields)`` adds an event ``at_s`` seconds after ``T0``;
    ``write(path)`` writes them in time order (the order given at a tie)."""

    def __init__(self, tenant: str = "shop") -> None:
        self.tenant = tenant
        self.events: list[dict[str, Any]] = []

    def __call__(self, typ: str, at_s: float, **fields: Any) -> None:
        ev = {"type": typ, "id": f"e{len(self.events)}", "ts": T0 + int(at_s * 1000),
              "tenant": self.tenant, **fields}
        if typ == "clock" and str(ev["id"]).startswith("serve-clock-"):
            del ev["tenant"]  # a server's clock is every tenant's
        self.events.append(ev)

    def write(self, path: Path) -> Path:
        events = sorted(self.events, key=lambda e: int(e["ts"]))
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        return path
