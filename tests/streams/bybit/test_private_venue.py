"""The live venue end to end against a loopback Bybit (streams/bybit/private_loopback.py) that verifies every
signature and timestamp as Bybit does; not against the venue itself, which this machine cannot reach. Instruments
are the capture's real instruments-info reply; the quote is the capture's last BTCUSDT top of book."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import string
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from liqbot.errors import LiqbotError
from schemas.records import Instrument, OrderEvent, OrderIntent, Side, TradingMode
from streams.bybit.parse import parse_instruments
from streams.bybit.private_loopback import LoopbackBybitPrivate, PrivateFaults
from streams.bybit.private_parse import order_params
from streams.bybit.private_rest import AuthRefusedError, BybitPrivateRest, ClockSkewError, PrivateRestConfig
from streams.bybit.private_venue import LiveVenue, LiveVenueConfig, OrderNotFoundError
from streams.bybit.private_ws import PrivateStreamConfig, PrivateStreamError
from streams.bybit.signing import Credentials
from streams.capture import read_capture
from streams.clients import Clients
from streams.consumer import consumer_config
from streams.http import RestError
from streams.websocket import ReconnectPolicy

QUOTE = ("65114.20", "65114.30")  # the capture's last BTCUSDT best bid and ask


def _token(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


@pytest.fixture
def creds() -> Credentials:
    """Fresh random test credentials, in Bybit's lengths (18-character key, 36-character secret)."""
    return Credentials(_token(18), _token(36))


@pytest.fixture(scope="module")
def instruments(bybit_capture: Path) -> dict[str, Instrument]:
    reply = next(f.data for f in read_capture(bybit_capture) if f.kind == "http" and f.venue == "bybit-linear")
    return {r.symbol: r for r in parse_instruments(reply, 0, "bybit-linear").records if isinstance(r, Instrument)}


def intent(coid: str, *, side: Side = "BUY", price: str = "65000.15", size: str = "0.0039", symbol: str = "BTCUSDT",
           mode: TradingMode = "LIVE") -> OrderIntent:
    return OrderIntent(venue="bybit-linear", symbol=symbol, client_order_id=coid, ts_event_ns=1, ts_recv_ns=1,
                       mode=mode, side=side, price=price, size=size, post_only=True, reduce_only=False,
                       valid_for_ms=10_000, hold_ms=60_000, take_profit_price=None, stop_loss_price=None,
                       delta_bps=10.0, expected_net_return=0.0004, fill_probability=0.3, model_version="m1",
                       prediction_id="p1")


def _config(peer: LoopbackBybitPrivate, ping_interval_s: float = 20.0) -> LiveVenueConfig:
    return LiveVenueConfig(
        rest=PrivateRestConfig(base_url=peer.rest_url, timeout_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05),
        stream=PrivateStreamConfig(url=peer.ws_url, ping_interval_s=ping_interval_s, policy=ReconnectPolicy(
            silence_timeout_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.2)),
        confirm_interval_s=0.05)


@dataclass
class Live:
    peer: LoopbackBybitPrivate
    venue: LiveVenue
    events: list[OrderEvent]  # from the private stream, in arrival order

    def of(self, coid: str) -> list[str]:
        return [e.status for e in self.events if e.client_order_id == coid]


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _collect(venue: LiveVenue, into: list[OrderEvent]) -> None:
    async for event in venue.events():
        into.append(event)


@asynccontextmanager
async def live(creds: Credentials, instruments: dict[str, Instrument], *, faults: PrivateFaults | None = None,
               ping_interval_s: float = 20.0) -> AsyncIterator[Live]:
    peer = LoopbackBybitPrivate(creds, instruments.values(), faults=faults)
    await peer.start()
    try:
        async with LiveVenue(creds, instruments, _config(peer, ping_interval_s)) as venue:
            session = Live(peer, venue, [])
            collector = asyncio.create_task(_collect(venue, session.events))
            yield session
        await collector
    finally:
        await peer.stop()


def test_place_is_acknowledged_by_rest_and_by_the_stream(creds: Credentials,
                                                         instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[OrderEvent, Live]:
        async with live(creds, instruments) as s:
            ack = await s.venue.place(intent("w-1"))
            await until(lambda: len(s.events) == 1)
        return ack, s

    ack, s = asyncio.run(scenario())
    order = s.peer.orders["w-1"]
    assert (ack.status, ack.event_id, ack.price, ack.size, ack.filled_size, ack.venue_order_id) == (
        "ACCEPTED", "w-1:ACCEPTED:0", "65000.10", "0.003", "0", order["orderId"])
    (streamed,) = s.events
    assert (streamed.event_id, streamed.status, streamed.venue_order_id, streamed.price, streamed.size) == (
        ack.event_id, "ACCEPTED", ack.venue_order_id, "65000.10", "0.003")  # one identity: re-delivery is harmless
    assert (order["side"], order["price"], order["qty"], order["timeInForce"], order["positionIdx"]) == (
        "Buy", "65000.10", "0.003", "PostOnly", 0)
    assert s.peer.answers == [("POST", "/v5/order/create", 0)]


def test_fills_arrive_once_each_with_price_size_fee_and_liquidity(creds: Credentials,
                                                                  instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[list[str], Live]:
        async with live(creds, instruments) as s:
            await s.venue.place(intent("w-1"))
            ids = [await s.peer.fill("w-1", "0.001"), await s.peer.fill("w-1", "0.002", is_maker=False)]
            await until(lambda: len(s.events) == 3)
        return ids, s

    ids, s = asyncio.run(scenario())
    accepted, partial, full = s.events
    assert accepted.status == "ACCEPTED"
    assert [(e.event_id, e.status, e.filled_size, e.last_fill_price, e.last_fill_size, e.fee, e.liquidity)
            for e in (partial, full)] == [
        (ids[0], "PARTIALLY_FILLED", "0.001", "65000.10", "0.001", "0.013000020", "MAKER"),
        (ids[1], "FILLED", "0.003", "65000.10", "0.002", "0.0715001100", "TAKER")]


def test_post_only_that_would_take_liquidity_is_cancelled_by_the_venue(creds: Credentials,
                                                                       instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[list[OrderEvent], Live]:
        async with live(creds, instruments) as s:
            s.peer.set_quote("BTCUSDT", *QUOTE)
            acks = [await s.venue.place(intent("cross", price="65114.35")),  # a buy rounds down to the ask
                    await s.venue.place(intent("rest", side="SELL", price="65114.25"))]  # a sell rounds up to it
            await until(lambda: len(s.events) == 2)
        return acks, s

    acks, s = asyncio.run(scenario())
    assert [(a.status, a.price) for a in acks] == [("ACCEPTED", "65114.30"), ("ACCEPTED", "65114.30")]
    cancelled = next(e for e in s.events if e.client_order_id == "cross")
    assert (cancelled.status, cancelled.reason, cancelled.event_id) == (
        "CANCELLED", "EC_PostOnlyWillTakeLiquidity", "cross:CANCELLED:0")
    assert s.of("rest") == ["ACCEPTED"]


def test_what_bybit_would_refuse_is_refused_before_sending(creds: Credentials,
                                                           instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[list[OrderEvent], Live]:
        async with live(creds, instruments) as s:
            made = [await s.venue.place(intent("small", size="0.0009")),
                    await s.venue.place(intent("nowhere", symbol="NOPEUSDT"))]
            with pytest.raises(LiqbotError, match=r"^paper-1: a PAPER intent reached the live venue$"):
                await s.venue.place(intent("paper-1", mode="PAPER"))
        return made, s

    (small, nowhere), s = asyncio.run(scenario())
    assert (small.status, small.event_id, small.reason) == (
        "REJECTED", "small:REJECTED:0", "refused before sending: BTCUSDT small: size 0.0009 rounds down to 0.000, "
        "below the minimum order qty 0.001")
    assert (nowhere.status, nowhere.reason) == ("REJECTED", "refused before sending: no instrument record for NOPEUSDT")
    assert s.peer.answers == [] and s.peer.orders == {}  # nothing reached the venue


def test_venue_refusal_is_a_rejected_event_with_bybits_reason(creds: Credentials,
                                                              instruments: dict[str, Instrument]) -> None:
    async def scenario() -> OrderEvent:
        faults = PrivateFaults(ret_codes=[(110007, "Available balance is insufficient")])
        async with live(creds, instruments, faults=faults) as s:
            return await s.venue.place(intent("w-1"))

    event = asyncio.run(scenario())
    assert (event.status, event.event_id, event.reason, event.price, event.size) == (
        "REJECTED", "w-1:REJECTED:0", "retCode 110007: Available balance is insufficient", "65000.10", "0.003")


def test_duplicate_client_order_id_answers_with_the_existing_order(creds: Credentials,
                                                                  instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[list[OrderEvent], Live]:
        async with live(creds, instruments) as s:
            first = await s.venue.place(intent("w-1"))
            again = await s.venue.place(intent("w-1"))
            await s.peer.fill("w-1", "0.001")
            after_fill = await s.venue.place(intent("w-1"))
        return [first, again, after_fill], s

    (first, again, after_fill), s = asyncio.run(scenario())
    assert (again.event_id, again.status, again.venue_order_id) == (first.event_id, "ACCEPTED", first.venue_order_id)
    assert (after_fill.event_id, after_fill.status, after_fill.filled_size) == (
        "w-1:PARTIALLY_FILLED:0.001", "PARTIALLY_FILLED", "0.001")
    assert [a[2] for a in s.peer.answers] == [0, 110072, 0, 110072, 0] and len(s.peer.orders) == 1


def test_a_lost_reply_is_retried_safely_thanks_to_the_order_link_id(creds: Credentials,
                                                                    instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[OrderEvent, Live]:
        async with live(creds, instruments, faults=PrivateFaults(lost_replies=1)) as s:
            return await s.venue.place(intent("w-1")), s

    event, s = asyncio.run(scenario())
    assert (event.status, event.event_id, event.venue_order_id) == (
        "ACCEPTED", "w-1:ACCEPTED:0", s.peer.orders["w-1"]["orderId"])
    assert s.peer.answers == [("POST", "/v5/order/create", 0), ("POST", "/v5/order/create", 110072),
                              ("GET", "/v5/order/realtime", 0)]
    assert len(s.peer.orders) == 1  # placed once, though sent twice


def test_transient_failures_are_retried_then_reported_as_unknown(creds: Credentials,
                                                                instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[OrderEvent, Live]:
        faults = PrivateFaults(http_statuses=[503, 429], ret_codes=[(10016, "Server error.")])
        async with live(creds, instruments, faults=faults) as s:
            placed = await s.venue.place(intent("w-1"))
            faults.http_statuses.extend([503] * 4)
            with pytest.raises(RestError, match=r"^POST /v5/order/create failed 4 times \(HTTP 503\); its outcome "
                                                r"is unknown$"):
                await s.venue.place(intent("w-2"))
        return placed, s

    placed, s = asyncio.run(scenario())
    assert placed.status == "ACCEPTED"
    assert [a[2] for a in s.peer.answers] == [-1, -1, 10016, 0, -1, -1, -1, -1]


def test_cancel_reads_the_final_state_back(creds: Credentials, instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[list[OrderEvent], Live]:
        async with live(creds, instruments) as s:
            for coid in ("w-1", "w-2", "w-3"):
                await s.venue.place(intent(coid))
            await s.peer.fill("w-2", "0.001")
            await s.peer.fill("w-3", "0.003")  # the fill wins the race with the cancel
            got = [await s.venue.cancel("BTCUSDT", c) for c in ("w-1", "w-1", "w-2", "w-3")]
            with pytest.raises(OrderNotFoundError, match=r"^BTCUSDT nope: Bybit has no such order \(cancel: retCode "
                                                    r"110001: order not exists or too late to cancel\)$"):
                await s.venue.cancel("BTCUSDT", "nope")
            await until(lambda: s.of("w-2")[-1:] == ["CANCELLED"])
        return got, s

    got, s = asyncio.run(scenario())
    assert [(e.event_id, e.status, e.reason, e.filled_size) for e in got] == [
        ("w-1:CANCELLED:0", "CANCELLED", "CancelByUser", "0"), ("w-1:CANCELLED:0", "CANCELLED", "CancelByUser", "0"),
        ("w-2:CANCELLED:0.001", "CANCELLED", "CancelByUser", "0.001"), ("w-3:FILLED:0.003", "FILLED", None, "0.003")]
    cancels = [a[2] for a in s.peer.answers if a[1] == "/v5/order/cancel"]
    assert cancels == [0, 110001, 0, 110001, 110001]
    assert s.of("w-1") == ["ACCEPTED", "CANCELLED"] and s.of("w-2") == ["ACCEPTED", "PARTIALLY_FILLED", "CANCELLED"]


def test_cancel_all_by_symbol_and_by_settle_coin(creds: Credentials, instruments: dict[str, Instrument]) -> None:
    async def scenario() -> tuple[tuple[str, ...], tuple[str, ...], Live]:
        async with live(creds, instruments) as s:
            for coid in ("b-1", "b-2"):
                await s.venue.place(intent(coid))
            await s.venue.place(intent("e-1", symbol="ETHUSDT", price="3000.005", size="0.05"))
            by_symbol = await s.venue.cancel_all("BTCUSDT")
            eth_left = s.peer.orders["e-1"]["orderStatus"]
            everything = await s.venue.cancel_all()
            assert eth_left == "New"
        return by_symbol, everything, s

    by_symbol, everything, s = asyncio.run(scenario())
    assert (sorted(by_symbol), everything) == (["b-1", "b-2"], ("e-1",))
    assert {c: o["orderStatus"] for c, o in s.peer.orders.items()} == {
        "b-1": "Cancelled", "b-2": "Cancelled", "e-1": "Cancelled"}


def test_a_bad_signature_is_refused_with_bybits_error_and_the_key_scrubbed(creds: Credentials,
                                                                          instruments: dict[str, Instrument]) -> None:
    params = order_params(intent("w-1"), instruments["BTCUSDT"])

    async def scenario() -> tuple[list[AuthRefusedError], LoopbackBybitPrivate]:
        peer = LoopbackBybitPrivate(creds, instruments.values())
        await peer.start()
        refused = []
        try:
            for wrong in (Credentials(creds.api_key, _token(36)), Credentials(_token(18), creds.api_secret)):
                with pytest.raises(AuthRefusedError) as info:
                    await BybitPrivateRest(wrong, PrivateRestConfig(base_url=peer.rest_url)).create(params)
                refused.append(info.value)
        finally:
            await peer.stop()
        return refused, peer

    (bad_sign, bad_key), peer = asyncio.run(scenario())
    assert str(bad_sign).startswith("/v5/order/create: retCode 10004: error sign! origin_string[")
    assert '<redacted>5000{"category":"linear","symbol":"BTCUSDT"' in str(bad_sign)
    assert creds.api_key not in str(bad_sign) and creds.api_key in peer.replies[0]  # Bybit's reply does echo it
    assert (str(bad_key), bad_key.code) == ("/v5/order/create: retCode 10003: API key is invalid.", 10003)
    assert peer.orders == {}


def test_a_refused_stream_authentication_stops_the_venue(creds: Credentials,
                                                        instruments: dict[str, Instrument]) -> None:
    async def scenario() -> LoopbackBybitPrivate:
        peer = LoopbackBybitPrivate(creds, instruments.values())
        await peer.start()
        try:
            wrong = Credentials(creds.api_key, _token(36))
            with pytest.raises(PrivateStreamError, match=r"^Bybit refused the private stream's authentication: "
                                                         r"'loopback: signature mismatch'$"):
                async with LiveVenue(wrong, instruments, _config(peer)):
                    pass
        finally:
            await peer.stop()
        return peer

    peer = asyncio.run(scenario())
    assert (peer.ws_connections, peer.ws_auths, peer.ws_ops) == (1, 0, ["auth"])  # no retry with refused keys


def test_a_stale_timestamp_is_refused_then_fixed_by_reading_bybits_clock(creds: Credentials,
                                                                        instruments: dict[str, Instrument]) -> None:
    params = order_params(intent("w-1"), instruments["BTCUSDT"])

    async def scenario(skew_ms: int) -> tuple[int, int, LoopbackBybitPrivate]:
        peer = LoopbackBybitPrivate(creds, instruments.values())
        await peer.start()
        try:
            rest = BybitPrivateRest(creds, PrivateRestConfig(base_url=peer.rest_url),
                                    clock_ms=lambda: time.time_ns() // 1_000_000 + skew_ms)
            reply = await rest.create(params)
        finally:
            await peer.stop()
        return reply.envelope.ret_code, rest.offset_ms, peer

    for skew_ms in (-20_000, 2_000):  # behind by more than recv_window; ahead by more than Bybit's 1 s
        code, offset_ms, peer = asyncio.run(scenario(skew_ms))
        assert code == 0 and abs(offset_ms + skew_ms) < 500
        assert [a[2] for a in peer.answers] == [10002, 0]


def test_a_clock_that_keeps_jumping_is_a_clear_error(creds: Credentials, instruments: dict[str, Instrument]) -> None:
    params = order_params(intent("w-1"), instruments["BTCUSDT"])
    jumps = iter(range(30_000, 10**9, 30_000))

    async def scenario() -> tuple[ClockSkewError, LoopbackBybitPrivate]:
        peer = LoopbackBybitPrivate(creds, instruments.values())
        await peer.start()
        try:
            rest = BybitPrivateRest(creds, PrivateRestConfig(base_url=peer.rest_url),
                                    clock_ms=lambda: time.time_ns() // 1_000_000 + next(jumps))
            with pytest.raises(ClockSkewError) as info:
                await rest.create(params)
        finally:
            await peer.stop()
        return info.value, peer

    error, peer = asyncio.run(scenario())
    assert str(error).startswith("/v5/order/create: retCode 10002: invalid request, please check your server "
                                 "timestamp or recv_window param. req_timestamp[")
    assert "(recv_window 5000 ms, offset " in str(error) and str(error).endswith("ms: check the host clock)")
    assert [a[2] for a in peer.answers] == [10002, 10002] and peer.orders == {}


def test_the_private_stream_reconnects_reauthenticates_and_resubscribes(creds: Credentials,
                                                                       instruments: dict[str, Instrument]) -> None:
    async def scenario() -> Live:
        async with live(creds, instruments, ping_interval_s=0.05) as s:
            await until(lambda: "ping" in s.peer.ws_ops)
            await s.peer.drop_connections()
            await until(lambda: s.peer.ws_ops.count("subscribe") == 2)
            await s.venue.place(intent("w-1"))
            await s.peer.fill("w-1", "0.003")
            await until(lambda: s.of("w-1") == ["ACCEPTED", "FILLED"])
        return s

    s = asyncio.run(scenario())
    assert (s.venue.stream.reconnects, s.venue.stream.authentications, s.peer.ws_connections, s.peer.ws_auths) == (
        1, 2, 2, 2)
    assert s.venue.stream.parse_errors == 0  # pongs and acknowledgements are understood


def _raw_values(clients: Clients, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(consumer_config(clients.settings.kafka, f"g-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append((message.key() or b"") + (message.value() or b""))
    consumer.close()
    return values


def _forms(credentials: Credentials) -> list[str]:
    """The key and the secret as text, hex and base64 (padded or not): none may appear anywhere."""
    forms = []
    for value in (credentials.api_key, credentials.api_secret):
        raw = value.encode()
        forms += [value, raw.hex(), base64.b64encode(raw).decode().rstrip("="),
                  base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    return forms


def test_no_credential_reaches_logs_records_topics_or_errors(
        creds: Credentials, instruments: dict[str, Instrument], clients: Clients,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def keep(error: BaseException) -> None:
        texts.extend([str(error), repr(error), "".join(traceback.format_exception(error))])

    async def scenario() -> tuple[list[OrderEvent], list[str]]:
        faults = PrivateFaults()
        async with live(creds, instruments, faults=faults, ping_interval_s=0.05) as s:
            s.peer.set_quote("BTCUSDT", *QUOTE)
            made = [await s.venue.place(intent(c, price=p, size=q)) for c, p, q in (
                ("s-1", "65000.15", "0.0039"), ("s-2", "65114.35", "0.001"), ("s-3", "65000", "0.0001"),
                ("s-1", "65000.15", "0.0039"))]
            faults.ret_codes.append((110007, "Available balance is insufficient"))
            made.append(await s.venue.place(intent("s-4")))
            await s.peer.fill("s-1", "0.001")
            made.append(await s.venue.cancel("BTCUSDT", "s-1"))
            await s.venue.place(intent("s-5"))
            await s.peer.drop_connections()
            await until(lambda: s.peer.ws_ops.count("subscribe") == 2)
            await s.venue.cancel_all()
            await until(lambda: s.of("s-5") == ["ACCEPTED", "CANCELLED"])
            wrong = Credentials(creds.api_key, _token(36))
            try:
                await BybitPrivateRest(wrong, PrivateRestConfig(base_url=s.peer.rest_url)).create(
                    order_params(intent("s-6"), instruments["BTCUSDT"]))
            except AuthRefusedError as exc:
                keep(exc)
            try:
                async with LiveVenue(wrong, instruments, _config(s.peer)):
                    pass
            except PrivateStreamError as exc:
                keep(exc)
            texts.extend([repr(s.venue), repr(s.venue.rest), repr(s.venue.stream), repr(s.venue.config),
                          repr(creds), str(creds)])
        return made + s.events, s.peer.replies

    events, replies = asyncio.run(scenario())
    assert len(texts) == 12 and {e.client_order_id for e in events} == {"s-1", "s-2", "s-3", "s-4", "s-5"}
    topic = clients.topics.name("orders.events")
    for event in events:  # every record goes through the real orders.events topic; its bytes are scanned
        clients.producer.send(topic, event, event.kafka_key())
    assert clients.producer.flush(30) == 0
    raw = _raw_values(clients, topic, len(events))
    assert len(raw) == len(events)
    texts += [caplog.text, *(r.getMessage() for r in caplog.records), *(repr(e) for e in events)]
    scanned = texts + [value.decode("latin-1") for value in raw]
    leaks = [(form, text[:60]) for text in scanned for form in _forms(creds) if form in text]
    assert leaks == []
    # the ways out were real: Bybit's 10004 reply echoes the key, and the frame log did see the auth frame
    assert any(creds.api_key in reply for reply in replies)
    assert any(r.name == "websockets.client" and '"args": ["<redacted>"' in r.getMessage() for r in caplog.records)
