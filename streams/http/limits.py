"""routeq serve's limits and defaults (each has a flag in ``routeq serve --help``
where a user may change it)."""

from __future__ import annotations

DEFAULT_MAX_BODY = 1 << 20
#: events waiting for the next group commit beyond which a POST gets 429
DEFAULT_MAX_QUEUE = 100_000
RETRY_AFTER_S = 1
STREAM_RETRY_S = 5
HEARTBEAT_S = 15.0
#: outputs a stream or webhook takes at a time from the history or the stored outputs
PAGE = 1_000
#: bytes a stream writes at a time (each write waits while the client's socket is full)
WRITE_CHUNK = 64 * 1024
#: a cursor's index that means "every output of that offset"
DONE = 1 << 62
DEFAULT_MAX_STREAMS = 1_000
DEFAULT_MAX_STREAMS_PER_TENANT = 100
DEFAULT_IDLE_TIMEOUT_S = 15.0
DEFAULT_BODY_TIMEOUT_S = 30.0
#: tenants an overview answer holds by default (?limit=, ?after= for the next)
OVERVIEW_PAGE = 100
#: outputs a webhook delivery holds at most (more where one input's outputs go on)
WEBHOOK_BATCH = 1_000
#: (not text/plain: a page of another origin may send it without asking, and
#: the README promises 415 for it)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/json-lines", "application/jsonlines")
