"""The analysis views (migrations/0002_views.sql) on chDB's real engine, each against the same figure computed in
Python from the same records: bars on the real Binance trades, bursts on the real liquidations and on the
SYNTHETIC wick scenario, latency stages, and an order's life and PnL on a SYNTHETIC order (no real capture
places one)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from decision.ids import exit_order_id
from liqbot.data import BINANCE_CAPTURE, LIQUIDATION_FRAMES
from schemas.records import Liquidation, Trade
from streams.capture_replay import capture_records
from streams.history.load import PRODUCE_DELAY_MS, insert
from streams.history.store import StoreSettings, apply_migrations, connect
from streams.roundtrip import records_from_captures
from training.scenario import WickScenario, generate

NS_PER_MIN = 60 * 10**9


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    made = connect(StoreSettings(path=tmp_path_factory.mktemp("views") / "ch"))
    apply_migrations(made)
    yield made
    made.close()  # chDB opens one directory per process at a time


@pytest.fixture(scope="module")
def real_trades(client: Client) -> list[Trade]:
    trades = [r for r in capture_records(BINANCE_CAPTURE, "binance-usdm") if isinstance(r, Trade)][:20_000]
    insert(client, "real.", [t.to_avro() for t in trades], "liqbot.Trade")
    return trades


def test_one_minute_bars_equal_the_trades_folded_in_python(client: Client, real_trades: list[Trade]) -> None:
    expected: dict[int, list[Any]] = {}
    for t in sorted(real_trades, key=lambda t: t.ts_event_ns):  # the capture's order is its offsets' order
        minute = t.ts_event_ns // NS_PER_MIN * 60
        price, size = Decimal(t.price), Decimal(t.size)
        bar = expected.setdefault(minute, [price, price, price, price, Decimal(0), 0, Decimal(0)])
        bar[1], bar[2], bar[3] = max(bar[1], price), min(bar[2], price), price
        bar[4] += size
        bar[5] += 1
        bar[6] += size if t.taker_side == "BUY" else 0
    rows = client.query("SELECT toUnixTimestamp(bar_start), open, high, low, close, volume, trades, buy_volume "
                        "FROM bars_1m WHERE namespace = 'real.' ORDER BY bar_start").result_rows
    assert len(rows) == len(expected) >= 5
    assert {r[0]: list(r[1:]) for r in rows} == expected
    seconds = client.query("SELECT count(), sum(trades) FROM bars_1s WHERE namespace = 'real.'").result_rows[0]
    assert seconds == (len({t.ts_event_ns // 10**9 for t in real_trades}), len(real_trades))


def test_feed_latency_stages_are_the_rows_differences(client: Client, real_trades: list[Trade]) -> None:
    gaps = sorted((t.ts_recv_ns - t.ts_exchange_ns) / 1e6 for t in real_trades)
    rows = client.query("SELECT records, exchange_to_receive_p50_ms, receive_to_produce_p50_ms, "
                        "receive_to_produce_p99_ms, produce_to_sink_p50_ms FROM feed_latency "
                        "WHERE namespace = 'real.' AND kind = 'trade'").result_rows
    (records, exchange_p50, produce_p50, produce_p99, sink_p50), = rows
    assert records == len(real_trades)
    # quantileExact takes the upper median of an even count
    assert exchange_p50 == pytest.approx(gaps[len(gaps) // 2], abs=1e-3)
    # the receive time's sub-millisecond part is lost to the millisecond Kafka timestamp: 1 to 2 ms here
    assert PRODUCE_DELAY_MS - 1 <= produce_p50 <= produce_p99 <= PRODUCE_DELAY_MS
    assert sink_p50 > 0  # inserted now, produced (by the capture's clock) long ago


def _bursts_in_python(liquidations: Sequence[Liquidation]) -> list[tuple[str, int, int]]:
    """(symbol, count, notional rounded) per burst: gaps of less than 5 s keep a burst going."""
    by_symbol: dict[str, list[Liquidation]] = defaultdict(list)
    for r in sorted(liquidations, key=lambda r: r.ts_event_ns):
        by_symbol[r.symbol].append(r)
    out = []
    for symbol, items in sorted(by_symbol.items()):
        groups: list[list[Liquidation]] = []
        for r in items:
            if groups and r.ts_event_ns - groups[-1][-1].ts_event_ns < 5 * 10**9:
                groups[-1].append(r)
            else:
                groups.append([r])
        out += [(symbol, len(g), round(sum(Decimal(r.bankruptcy_price) * Decimal(r.size) for r in g))) for g in groups]
    return out


def test_liquidation_bursts_on_the_real_liquidations(client: Client) -> None:
    real = [r for r in records_from_captures([LIQUIDATION_FRAMES]).records if isinstance(r, Liquidation)]
    insert(client, "real.", [r.to_avro() for r in real], "liqbot.Liquidation")
    rows = client.query("SELECT symbol, liquidations, round(notional) FROM liquidation_bursts "
                        "WHERE namespace = 'real.' ORDER BY symbol, start_ns").result_rows
    assert [(s, n, int(v)) for s, n, v in rows] == _bursts_in_python(real)
    assert len(real) == 5 and len(rows) == 4  # two BTCUSDT liquidations 66 ms apart are one burst


def test_liquidation_bursts_and_their_price_moves_on_the_synthetic_scenario(client: Client) -> None:
    scenario = generate(WickScenario(seed=3, symbols=("WICKUSDT",), duration_s=900, bursts=3))  # SYNTHETIC
    liquidations = [r for r in scenario.records if isinstance(r, Liquidation)]
    trades = sorted((r for r in scenario.records if isinstance(r, Trade)), key=lambda t: t.ts_event_ns)
    insert(client, "wick.", [r.to_avro() for r in liquidations], "liqbot.Liquidation")
    insert(client, "wick.", [t.to_avro() for t in trades], "liqbot.Trade")
    rows = client.query("SELECT symbol, liquidations, round(notional), toUnixTimestamp64Nano(start_ns), "
                        "toUnixTimestamp64Nano(end_ns), price_at_start, price_at_end, price_60s_after, trades_during "
                        "FROM liquidation_bursts WHERE namespace = 'wick.' ORDER BY start_ns").result_rows
    assert [(s, n, int(v)) for s, n, v, *_ in rows] == _bursts_in_python(liquidations)

    def last_price(since_ns: int, at_ns: int) -> Decimal | None:
        before = [t for t in trades if since_ns <= t.ts_event_ns <= at_ns]
        return Decimal(before[-1].price) if before else None

    for *_, start, end, at_start, at_end, after, during in rows:
        since = start - 60 * 10**9  # a price older than a minute before the burst says nothing about it
        assert (at_start, at_end, after) == (last_price(since, start), last_price(since, end),
                                             last_price(since, end + 60 * 10**9))
        assert at_start is not None
        assert during == sum(start <= t.ts_event_ns <= end for t in trades)
    assert len(rows) >= 3


def _order_records(fee: str = "0.5") -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """SYNTHETIC: one buy filled at 100, exited at 103 by take-profit; fees 0.5 + 0.7, funding 0.2 in between."""
    t0 = 1_700_000_000 * 10**9
    intent = {"venue": "paper", "symbol": "WICKUSDT", "client_order_id": "entry-1", "ts_event_ns": t0,
              "ts_recv_ns": t0, "mode": "PAPER", "side": "BUY", "price": "100", "size": "2", "post_only": True,
              "reduce_only": False, "valid_for_ms": 5000, "hold_ms": 60_000, "take_profit_price": None,
              "stop_loss_price": None, "delta_bps": -20.0, "expected_net_return": 0.004, "fill_probability": 0.3,
              "model_version": "m1", "prediction_id": "p1"}
    exit_id = exit_order_id("entry-1")

    def event(client_id: str, n: int, at_s: int, status: str, **extra: Any) -> dict[str, Any]:
        return {"venue": "paper", "symbol": "WICKUSDT", "event_id": f"{client_id}:{n}", "client_order_id": client_id,
                "venue_order_id": None, "ts_event_ns": t0 + at_s * 10**9, "ts_recv_ns": t0 + at_s * 10**9,
                "status": status, "side": extra.pop("side", "BUY"), "price": "100", "size": "2",
                "filled_size": "0", "last_fill_price": None, "last_fill_size": None, "fee": None,
                "liquidity": None, "reason": None, **extra}

    events = [event("entry-1", 1, 0, "ACCEPTED"),
              event("entry-1", 2, 2, "FILLED", filled_size="2", last_fill_price="100", last_fill_size="2", fee=fee,
                    liquidity="MAKER"),
              event(exit_id, 1, 30, "FILLED", side="SELL", filled_size="2", last_fill_price="103",
                    last_fill_size="2", fee="0.7", liquidity="TAKER", reason="TAKE_PROFIT")]

    def position(n: int, at_s: int, funding: float) -> dict[str, Any]:
        return {"venue": "paper", "symbol": "WICKUSDT", "event_id": f"pos:{n}", "ts_event_ns": t0 + at_s * 10**9,
                "mode": "PAPER", "size": "0", "entry_price": None, "mark_price": None, "realised_pnl": 0.0,
                "unrealised_pnl": 0.0, "fees_paid": 0.0, "funding_paid": funding, "equity": 0.0}

    positions = [position(1, 2, 1.0), position(2, 20, 1.2), position(3, 30, 1.2)]
    return intent, events, positions


def test_an_orders_life_and_net_pnl_after_fees_and_funding(client: Client) -> None:
    intent, events, positions = _order_records()
    insert(client, "orders.", [intent], "liqbot.OrderIntent")
    insert(client, "orders.", events, "liqbot.OrderEvent")
    insert(client, "orders.", positions, "liqbot.Position")
    (life,) = client.query("SELECT entry_status, filled, entry_price, exit_price, exit_reason, gross_pnl, fees, "
                           "funding, net_pnl, net_return FROM order_life WHERE namespace = 'orders.'").result_rows
    assert life[:5] == ("FILLED", True, Decimal(100), Decimal(103), "TAKE_PROFIT")
    gross, fees, funding = 2 * 3.0, 0.5 + 0.7, 1.2 - 1.0
    assert life[5:] == pytest.approx((gross, fees, funding, gross - fees - funding, (gross - fees - funding) / 200))
    (arm,) = client.query("SELECT delta_bps, valid_for_ms, orders, fills, fill_rate, net_pnl FROM pnl_per_arm "
                          "WHERE namespace = 'orders.'").result_rows
    assert arm == pytest.approx((-20.0, 5000, 1, 1, 1.0, gross - fees - funding))
    (decile,) = client.query("SELECT decile, orders, predicted_fill_probability, realised_fill_rate, "
                             "predicted_net_return, realised_net_return FROM calibration "
                             "WHERE namespace = 'orders.'").result_rows
    assert decile == pytest.approx((1, 1, 0.3, 1.0, 0.004, (gross - fees - funding) / 200))
