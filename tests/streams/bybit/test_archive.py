"""Bybit's public trade archive (CSV) imports as the same trades the live feed gives, bad rows kept aside."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from liqbot.config import Settings
from schemas.records import Trade
from streams.bybit.archive import COLUMNS, read_trade_archive
from streams.roundtrip import records_from_captures
from streams.venue import ParseError


@pytest.fixture(scope="module")
def live_trades(bybit_capture: Path) -> list[Trade]:
    return [r for r in records_from_captures([bybit_capture]).records
            if isinstance(r, Trade) and r.venue == "bybit-linear"]


def _archive(path: Path, trades: list[Trade], extra_rows: tuple[str, ...] = ()) -> Path:
    """An archive-format file whose rows are the real captured trades (the format's columns, Bybit's order)."""
    rows = [",".join(COLUMNS)]
    for t in trades:
        notional = Decimal(t.price) * Decimal(t.size)
        rows.append(",".join([
            str(Decimal(t.ts_event_ns) / 1_000_000_000), t.symbol, "Buy" if t.taker_side == "BUY" else "Sell",
            t.size, t.price, t.tick_direction or "", t.event_id, str(notional * 100_000_000), t.size, str(notional),
        ]))
    rows += extra_rows
    with gzip.open(path, "wt") as out:
        out.write("\n".join(rows) + "\n")
    return path


def test_archive_rows_become_the_live_trades(tmp_path: Path, live_trades: list[Trade]) -> None:
    rows = list(read_trade_archive(_archive(tmp_path / "BTCUSDT2026-08-09.csv.gz", live_trades)))
    assert all(r.error == "" for r in rows) and len(rows) == 327
    for row, live in zip(rows, live_trades, strict=True):
        # no message or receive time, BT, RPI or seq in the archive
        assert row.trade == replace(live, ts_exchange_ns=live.ts_event_ns, ts_recv_ns=live.ts_event_ns, rpi=None,
                                    seq=None)


def test_bad_rows_are_reported_and_the_rest_imported(tmp_path: Path, live_trades: list[Trade]) -> None:
    bad = ("1786310819.680,BTCUSDT,Up,0.004,65114.20,MinusTick,x1,1,1,1",
           "1786310819.680,BTCUSDT,Buy,0.004,6.5e4,MinusTick,x2,1,1,1",
           "1786310819.680,BTCUSDT,Buy,0.004")
    rows = list(read_trade_archive(_archive(tmp_path / "a.csv.gz", live_trades[:3], bad)))
    assert [r.trade is not None for r in rows] == [True, True, True, False, False, False]
    assert [r.error.split(": ", 1)[1] for r in rows[3:]] == [
        "side 'Up' is neither Buy nor Sell",
        "topic archive BTCUSDT: field 'price' = '6.5e4' is not a decimal string",
        "4 columns, expected 10",
    ]


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("time,sym,side\n1,2,3\n")
    with pytest.raises(ParseError, match="is not Bybit's trade archive header"):
        list(read_trade_archive(path))


def test_import_trades_command(settings: Settings, tmp_path: Path, live_trades: list[Trade]) -> None:
    path = _archive(tmp_path / "BTCUSDT.csv.gz", live_trades, ("1,BTCUSDT,Buy,1",))
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": f"imp{uuid.uuid4().hex[:8]}.",
           "LIQBOT_PARTITIONS": str(settings.kafka.partitions)}
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "import-trades", "--bootstrap",
                          settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url, str(path)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {"files": 1, "trades": 327, "errors": 1}
