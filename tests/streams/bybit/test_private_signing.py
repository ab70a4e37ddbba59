"""Bybit v5 signing against Bybit's documented layout and an independent HMAC (the openssl command line),
and credentials that never show themselves."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest

from liqbot.errors import LiqbotError
from streams.bybit.signing import (
    ENV_API_KEY,
    ENV_API_SECRET,
    Credentials,
    rest_headers,
    rest_prehash,
    ws_auth_request,
)

CREDS = Credentials("XXXXXXXXXX7a4Q", "t0pS3cr3t-only-for-this-test-9f8e7d6c5b")


def _openssl_hmac(secret: str, message: str) -> str:
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret], input=message.encode(),
                         capture_output=True, check=True).stdout.decode()
    return out.strip().rsplit(" ", 1)[-1]


def test_prehash_is_bybits_documented_layout() -> None:
    # https://bybit-exchange.github.io/docs/v5/guide: the GET and POST examples of "Create A Request"
    assert rest_prehash(1658384314791, "XXXXXXXXXX", 5000, "category=option&symbol=BTC-29JUL22-25000-C") == \
        "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
    assert rest_prehash(1658385579423, "XXXXXXXXXX", 5000, '{"category": "option"}') == \
        '1658385579423XXXXXXXXXX5000{"category": "option"}'


@pytest.mark.parametrize("payload", ["category=linear&symbol=BTCUSDT&orderLinkId=c-1&openOnly=0",
                                     '{"category":"linear","symbol":"BTCUSDT","qty":"0.001"}', ""])
def test_rest_signature_equals_an_independent_hmac(payload: str) -> None:
    headers = rest_headers(CREDS, 1786310817197, 5000, payload)
    expected = _openssl_hmac(CREDS.api_secret, f"1786310817197{CREDS.api_key}5000{payload}")
    assert headers == {"X-BAPI-API-KEY": CREDS.api_key, "X-BAPI-TIMESTAMP": "1786310817197",
                       "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": expected}
    assert len(expected) == 64


def test_ws_auth_is_signed_over_get_realtime_and_expires() -> None:
    message = json.loads(ws_auth_request(CREDS, 1662350400000, "auth-1"))
    assert message == {"op": "auth", "req_id": "auth-1", "args": [
        CREDS.api_key, 1662350400000, _openssl_hmac(CREDS.api_secret, "GET/realtime1662350400000")]}


def test_credentials_never_show_key_or_secret() -> None:
    @dataclass
    class Holder:
        credentials: Credentials

    texts = [repr(CREDS), str(CREDS), f"{CREDS}", f"{CREDS!r}", f"{CREDS}", repr(Holder(CREDS)), repr([CREDS])]
    assert texts[0] == "Credentials(api_key='...7a4Q', api_secret=<hidden>)"
    assert all(CREDS.api_key not in t and CREDS.api_secret not in t for t in texts)


@pytest.mark.parametrize(("env", "named"), [
    ({}, f"set {ENV_API_KEY} and {ENV_API_SECRET} in the environment"),
    ({ENV_API_KEY: "k" * 18}, f"set {ENV_API_SECRET} in the environment"),
    ({ENV_API_KEY: "", ENV_API_SECRET: "s" * 36}, f"set {ENV_API_KEY} in the environment"),
])
def test_missing_keys_name_the_variables(env: dict[str, str], named: str) -> None:
    with pytest.raises(LiqbotError, match="live trading needs Bybit API keys") as info:
        Credentials.from_env(env)
    assert named in str(info.value) and "without --live: paper trading" in str(info.value)


def test_keys_come_from_the_environment_mapping() -> None:
    credentials = Credentials.from_env({ENV_API_KEY: "k" * 18, ENV_API_SECRET: "s" * 36, "OTHER": "x"})
    assert (credentials.api_key, credentials.api_secret) == ("k" * 18, "s" * 36)

