"""The tokens file of ``routeq serve`` (its format: ``streams/http/tokens.py``),
written for the benchmarks and the tests that start a server."""

from __future__ import annotations

import json
from collections.abc import Mapping


def _string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's


def tokens_toml(admin: str | None, tenants: Mapping[str, str | Mapping[str, str]]) -> str:
    """A tokens file's text: the ``admin`` token (None: no admin) and each
    tenant's token, or the keys of its table (``token``, ``webhook``,
    ``webhook_secret``)."""
    parts = [] if admin is None else [f"[admin]\ntokens = [{_string(admin)}]\n"]
    for name, keys in tenants.items():
        table = {"token": keys} if isinstance(keys, str) else keys
        parts.append(f"[tenants.{name}]\n"
                     + "".join(f"{k} = {_string(v)}\n" for k, v in table.items()))
    return "\n".join(parts)

