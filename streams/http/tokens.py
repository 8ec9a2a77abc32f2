"""Bearer tokens for ``routeq serve``, read from a TOML file.

```toml
[admin]
tokens = ["a-long-random-admin-token"]     # sees every tenant and the dashboard

[tenants.shop-1]
tokens = ["a-long-random-token-of-shop-1"]  # posts and reads shop-1 only
webhook = "http://127.0.0.1:9000/routeq"    # optional: outputs pushed here
webhook_secret = "a-long-random-secret"     # optional: deliveries signed (HMAC-SHA256)
```

(``token = "..."`` is accepted for a single token.) Tokens are only ever
compared, by their SHA-256 digest; they are never printed or logged.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from schemas.events import TENANT_RE

MIN_TOKEN = 16


class TokensError(Exception):
    """The tokens file cannot be used (the message names the key)."""


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: a tenant, or the admin (``tenant is None``)."""

    tenant: str | None

    @property
    def admin(self) -> bool:
        return self.tenant is None


ADMIN = Principal(None)


@dataclass
class Tokens:
    by_digest: dict[bytes, Principal] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)
    #: tenant -> the secret its webhook deliveries are signed with
    webhook_secrets: dict[str, bytes] = field(default_factory=dict)
    open: bool = False  # no tokens file: every caller is the admin (loopback only)

    @property
    def tenants(self) -> frozenset[str]:
        """The tenants that have a token."""
        return frozenset(p.tenant for p in self.by_digest.values() if p.tenant is not None)

    def who(self, authorization: str | None) -> Principal | None:
        if self.open:
            return ADMIN
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.by_digest.get(_digest(token.strip()))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _token_list(table: dict[str, object], where: str) -> list[str]:
    raw: object = table.get("tokens", [])
    if "token" in table:
        raw = [table["token"], *(raw if isinstance(raw, list) else [])]
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise TokensError(f"tokens: key '{where}.tokens' must be a list of strings")
    for t in raw:
        assert isinstance(t, str)
        if len(t) < MIN_TOKEN or any(ch.isspace() for ch in t):
            raise TokensError(f"tokens: a token in '{where}' must be at least {MIN_TOKEN} "
                              f"characters without spaces")
    return [t for t in raw if isinstance(t, str)]


def load_tokens(path: str | None) -> Tokens:
    if path is None:
        return Tokens(open=True)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokensError(f"tokens file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TokensError(f"tokens file {path} is not valid TOML: {exc}") from None
    tokens = Tokens()
    unknown = set(data) - {"admin", "tenants"}
    if unknown:
        raise TokensError(f"tokens: unknown key '{sorted(unknown)[0]}' (expected admin, tenants)")
    admin = data.get("admin", {})
    if not isinstance(admin, dict):
        raise TokensError("tokens: key 'admin' must be a table")
    for t in _token_list(admin, "admin"):
        tokens.by_digest[_digest(t)] = ADMIN
    tenants = data.get("tenants", {})
    if not isinstance(tenants, dict):
        raise TokensError("tokens: key 'tenants' must be a table of tenants")
    for name, table in tenants.items():
        if not TENANT_RE.fullmatch(name):
            raise TokensError(f"tokens: tenant name '{name}' must be 1-64 chars of "
                              f"[A-Za-z0-9_.-]")
        if not isinstance(table, dict):
            raise TokensError(f"tokens: key 'tenants.{name}' must be a table")
        for t in _token_list(table, f"tenants.{name}"):
            if _digest(t) in tokens.by_digest:
                raise TokensError(f"tokens: a token of 'tenants.{name}' is used twice")
            tokens.by_digest[_digest(t)] = Principal(name)
        hook = table.get("webhook")
        if hook is not None:
            if not isinstance(hook, str) or not hook.startswith(("http://", "https://")):
                raise TokensError(f"tokens: key 'tenants.{name}.webhook' must be an "
                                  f"http(s) URL")
            tokens.webhooks[name] = hook
        secret = table.get("webhook_secret")
        if secret is not None:
            if hook is None:
                raise TokensError(f"tokens: key 'tenants.{name}.webhook_secret' needs "
                                  f"'tenants.{name}.webhook'")
            if (not isinstance(secret, str) or len(secret) < MIN_TOKEN
                    or any(ch.isspace() for ch in secret)):
                raise TokensError(f"tokens: key 'tenants.{name}.webhook_secret' must be at "
                                  f"least {MIN_TOKEN} characters without spaces")
            tokens.webhook_secrets[name] = secret.encode()
    if not tokens.by_digest:
        raise TokensError(f"tokens file {path} holds no token")
    return tokens
