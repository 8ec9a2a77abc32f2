"""Output events of the contract (v1) and their canonical encoding.

Outputs are plain dicts whose keys come in a fixed order: ``type``, ``ts``,
``tenant``, ``cause``, ``offset`` (only where the input has a position in a
log), then the type's own fields. orjson keeps that order, so the same outputs
always encode to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

Output = dict[str, Any]

#: every output type and its own fields, in encoding order
OUTPUT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "chat.queued": ("chat", "visitor", "position", "eta_s", "priority"),
    "chat.assigned": (
        "chat",
        "visitor",
        "agent",
        "wait_ms",
        "priority",
        "match",
        "score",
        "reason",
        "rules",
    ),
    "chat.to_bot": ("chat", "visitor"),
    "chat.requeued": ("chat", "agent", "why"),
    "chat.overflowed": ("chat", "visitor", "to"),
    "chat.abandoned": ("chat", "visitor", "wait_ms"),
    "event.rejected": ("error", "input"),
}

SCORE_KEYS = (
    "page",
    "loyalty",
    "returning",
    "level",
    "aging",
    "skill",
    "load",
    "sticky",
    "exclusive",
)
REASONS = ("exclusive", "sticky", "skill", "best", "overflow")
REQUEUE_WHY = ("declined", "offer_timeout", "agent_away", "agent_offline")

MAX_REJECTED_INPUT = 512


def head(otype: str, ts: int, tenant: str, cause: str, offset: int | None) -> Output:
    """The common fields every output starts with."""
    out: Output = {"type": otype, "ts": ts, "tenant": tenant, "cause": cause}
    if offset is not None:
        out["offset"] = offset
    return out


def rejected(
    error: str,
    raw: bytes | str,
    *,
    ts: int,
    tenant: str,
    line: int | None = None,
    offset: int | None = None,
    cause: str = "",
) -> Output:
    """An ``event.rejected`` for a malformed input line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    out = head("event.rejected", ts, tenant, cause, offset)
    out["error"] = error
    out["input"] = text[:MAX_REJECTED_INPUT]
    if line is not None:
        out["line"] = line
    return out


def encode(output: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of one output (no newline)."""
    return orjson.dumps(output)


def encode_lines(outputs: list[Output]) -> bytes:
    """JSON Lines for a batch of outputs (each line ends with a newline)."""
    if not outputs:
        return b""
    return b"\n".join(map(orjson.dumps, outputs)) + b"\n"
