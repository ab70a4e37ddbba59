"""Bybit v5 request signing (pure) and the API credentials, which never show themselves in text.

REST: X-BAPI-SIGN = hex HMAC-SHA256(secret, timestamp + apiKey + recvWindow + (queryString | jsonBody)).
Private WebSocket: {"op": "auth", "args": [apiKey, expires, hex HMAC-SHA256(secret, "GET/realtime" + expires)]}.
(https://bybit-exchange.github.io/docs/v5/guide, https://bybit-exchange.github.io/docs/v5/ws/connect)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from liqbot.errors import LiqbotError

__all__ = [
    "ENV_API_KEY", "ENV_API_SECRET", "REDACTED", "Credentials", "hmac_sha256_hex", "rest_headers",
    "rest_prehash", "ws_auth_request", "ws_auth_signature",
]

ENV_API_KEY = "LIQBOT_BYBIT_API_KEY"
ENV_API_SECRET = "LIQBOT_BYBIT_API_SECRET"
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An API key and its secret; repr and str show only the key's last four characters."""

    api_key: str
    api_secret: str

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise LiqbotError("Bybit credentials need both an API key and an API secret")

    def __repr__(self) -> str:
        return f"Credentials(api_key='...{self.api_key[-4:]}', api_secret=<hidden>)"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Credentials:
        """Read at the entry point only; a missing or empty variable is named in the error."""
        missing = [name for name in (ENV_API_KEY, ENV_API_SECRET) if not env.get(name)]
        if missing:
            raise LiqbotError(f"live trading needs Bybit API keys: set {' and '.join(missing)} in the environment "
                              "(or run without --live: paper trading)")
        return cls(env[ENV_API_KEY], env[ENV_API_SECRET])

    def redact(self, text: str) -> str:
        """`text` with the key and the secret replaced; venue replies can echo the key (retCode 10004)."""
        return text.replace(self.api_secret, REDACTED).replace(self.api_key, REDACTED)


def hmac_sha256_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_prehash(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    """What Bybit signs: the query string of a GET (as sent) or the raw body of a POST."""
    return f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"


def rest_headers(credentials: Credentials, timestamp_ms: int, recv_window_ms: int, payload: str) -> dict[str, str]:
    """The four authentication headers of one signed request."""
    prehash = rest_prehash(timestamp_ms, credentials.api_key, recv_window_ms, payload)
    return {
        "X-BAPI-API-KEY": credentials.api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN": hmac_sha256_hex(credentials.api_secret, prehash),
    }


def ws_auth_signature(secret: str, expires_ms: int) -> str:
    return hmac_sha256_hex(secret, f"GET/realtime{expires_ms}")


def ws_auth_request(credentials: Credentials, expires_ms: int, req_id: str) -> str:
    """The private stream's auth message; `expires_ms` must lie in the venue's future."""
    signature = ws_auth_signature(credentials.api_secret, expires_ms)
    return json.dumps({"op": "auth", "args": [credentials.api_key, expires_ms, signature], "req_id": req_id})
