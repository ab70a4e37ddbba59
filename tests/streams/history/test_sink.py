"""`liqbot sink` on the real broker and chDB's real engine: real records land once with their exact values, bad
input is dead-lettered with its reason while the rows around it land, re-delivery writes nothing twice, and
`liqbot sql` answers from a second process while the sink runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE, LIQUIDATION_FRAMES
from schemas import load_all
from schemas.records import AvroRecord, BookUpdate, Trade
from streams.avro import encode_body
from streams.capture_replay import capture_records
from streams.clients import Clients
from streams.control import new_command, send_command
from streams.roundtrip import records_from_captures

REPO = Path(__file__).resolve().parents[3]
# The fixture's class lives in conftest.py, which tests do not import by name.
Store = Any


@cache
def _real() -> tuple[AvroRecord, ...]:
    """Every Bybit record and liquidation of the captures, and the first 20,000 Binance ones."""
    return (*capture_records(BYBIT_CAPTURE, "bybit-linear"), *records_from_captures([LIQUIDATION_FRAMES]).records,
            *capture_records(BINANCE_CAPTURE, "binance-usdm")[:20_000])


def _publish(clients: Clients, records: Any) -> dict[str, int]:
    """Produces `records` to their topics; the rows each table should then hold."""
    clients.topics.ensure(clients.admin())
    specs = {spec.schema: spec for spec in clients.topics.specs}
    clients.producer.send_all([(clients.topics.name(specs[r.SCHEMA]), r, r.kafka_key()) for r in records])
    clients.producer.drain()
    return dict(Counter(specs[r.SCHEMA].table for r in records))


def _count(table: str, where: str = "") -> str:
    return f"SELECT count() FROM {table} {where}"


def _land(history_store: Store, sink: Any, expected: dict[str, int]) -> None:
    for table, n in expected.items():
        assert history_store.wait(_count(table), n, sink) == n, table


def test_real_records_land_once_with_their_exact_values(settings: Settings, clients: Clients,
                                                        history_store: Store) -> None:
    records = _real()
    expected = _publish(clients, records)
    assert set(expected) == {"trades", "book_updates", "top_of_book", "tickers", "instruments", "liquidations"}
    with history_store.sink(settings) as sink:
        _land(history_store, sink, expected)
        trades = history_store.rows(
            "SELECT venue, symbol, event_id, toString(price), toString(size), toUnixTimestamp64Nano(ts_event_ns), "
            "taker_side, tick_direction FROM trades")
        levels = history_store.rows(
            "SELECT venue, symbol, update_id, arrayMap(p -> toString(p), bids.price), "
            "arrayMap(s -> toString(s), asks.size) FROM book_updates")
        coordinates = history_store.rows(
            "SELECT _topic, _partition, count(), uniqExact(_offset), min(_offset), max(_offset), "
            "uniqExact(_schema_id) FROM ("
            + " UNION ALL ".join(f"SELECT _topic, _partition, _offset, _schema_id FROM {t}" for t in expected)
            + ") GROUP BY _topic, _partition")
        counts = {table: int(history_store.rows(_count(table))[0][0]) for table in expected}
    assert counts == expected  # nothing twice: the waits stopped at the count, and it did not grow past it

    sent_trades = [r for r in records if isinstance(r, Trade)]
    by_key = {(t[0], t[1], t[2]): t[3:] for t in trades}
    assert len(by_key) == len(trades) == len(sent_trades)
    for r in sent_trades:
        price, size, ts, side, tick = by_key[(r.venue, r.symbol, r.event_id)]
        assert (Decimal(price), Decimal(size), int(ts), side, tick) == \
            (Decimal(r.price), Decimal(r.size), r.ts_event_ns, r.taker_side, r.tick_direction)
    books = [r for r in records if isinstance(r, BookUpdate)]
    landed = sorted((v, s, int(u), [Decimal(p) for p in bids], [Decimal(q) for q in asks])
                    for v, s, u, bids, asks in levels)
    assert landed == sorted((r.venue, r.symbol, r.update_id, [Decimal(level.price) for level in r.bids],
                             [Decimal(level.size) for level in r.asks]) for r in books)
    assert sum(len(row[3]) for row in landed) > 50_000  # the levels came through, not only the rows
    # every partition's offsets 0..n-1, each once, all written with one registered schema id
    for _topic, _partition, n, unique, low, high, ids in coordinates:
        assert (int(n), int(unique), int(low), int(high), int(ids)) == (int(n), int(n), 0, int(n) - 1, 1)
    assert sum(int(row[2]) for row in coordinates) == len(records)


def test_the_safety_controls_audit_log_lands_as_it_was_sent(settings: Settings, clients: Clients,
                                                             history_store: Store) -> None:
    """`liqbot control`'s records (who, when, why) reach `control_commands` like every other topic's."""
    clients.topics.ensure(clients.admin())
    sent = [new_command("KILL", "venue maintenance", "ops@test"),
            new_command("ARM_DEAD_MAN", "night shift", "ops@test", timeout_s=30.0),
            new_command("RESUME", "maintenance over", "ops@test")]
    for command in sent:
        send_command(clients, command)
    with history_store.sink(settings) as sink:
        assert history_store.wait(_count("control_commands"), 3, sink) == 3
        rows = history_store.rows("SELECT command_id, scope, action, operator, reason, "
                                  "toUnixTimestamp64Nano(ts_issued_ns), dead_man_timeout_s FROM control_commands "
                                  "ORDER BY _offset")
    assert [tuple(row) for row in rows] == [
        (c.command_id, "ALL", c.action, "ops@test", c.reason, c.ts_issued_ns, c.dead_man_timeout_s) for c in sent]


def _liqbot_sql(history_store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQBOT_HOME": str(history_store.home)}
    where = ["--clickhouse-url", history_store.url] if history_store.url else []
    return subprocess.run([sys.executable, "-m", "liqbot.cli", "sql", *args, *where], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_liqbot_sql_answers_from_another_process_while_the_sink_runs(settings: Settings, clients: Clients,
                                                                      history_store: Store, tmp_path: Path) -> None:
    records = capture_records(BYBIT_CAPTURE, "bybit-linear")
    expected = _publish(clients, records)
    by_symbol = Counter(r.symbol for r in records if isinstance(r, Trade))
    query = "SELECT symbol, count() AS trades FROM trades GROUP BY symbol ORDER BY trades DESC, symbol"
    with history_store.sink(settings) as sink:
        _land(history_store, sink, expected)
        table = _liqbot_sql(history_store, query)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        # PrettyCompact: a header line, one line per symbol, a closing line, all of one width
        assert len(lines) == len(by_symbol) + 2 and len({len(line) for line in lines}) == 1
        assert "symbol" in lines[0] and "trades" in lines[0]
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines[1:-1]]  # after the row number
        expected_rows = sorted(by_symbol.items(), key=lambda kv: (-kv[1], kv[0]))
        assert [(s, int(n)) for s, n in cells] == expected_rows

        written = {fmt: tmp_path / f"out.{fmt}" for fmt in ("csv", "json", "parquet")}
        for fmt, path in written.items():
            done = _liqbot_sql(history_store, query, "--format", fmt, "--out", str(path))
            assert done.returncode == 0 and "wrote" in done.stderr, done.stderr
        bad = _liqbot_sql(history_store, "SELECT nonsense FROM trades")
        assert bad.returncode != 0
        assert "nonsense" in bad.stderr and "Traceback" not in bad.stderr
        assert sink.process.poll() is None  # a bad query does not harm the sink
    assert [(r["symbol"], int(r["trades"])) for r in csv.DictReader(io.StringIO(written["csv"].read_text()))] \
        == expected_rows
    assert [(d["symbol"], int(d["trades"])) for d in map(json.loads, written["json"].read_text().splitlines())] \
        == expected_rows
    parquet = pq.read_table(written["parquet"]).to_pylist()
    assert [(d["symbol"], int(d["trades"])) for d in parquet] == expected_rows


def _trade_body(clients: Clients, topic: str, **changes: Any) -> bytes:
    trade = next(r for r in capture_records(BYBIT_CAPTURE, "bybit-linear") if isinstance(r, Trade))
    header = clients.producer.header(topic, "liqbot.Trade")
    return header + encode_body(load_all()["liqbot.Trade"], trade.to_avro() | changes)


def test_bad_input_is_dead_lettered_with_its_reason_and_the_rows_around_it_land(
        settings: Settings, clients: Clients, history_store: Store) -> None:
    clients.topics.ensure(clients.admin())
    topic = clients.topics.name(next(s for s in clients.topics.specs if s.table == "trades"))
    good = _trade_body(clients, topic)
    body = good[5:]
    bad: list[tuple[bytes | None, str, str]] = [
        (b"\x00" + (999_999).to_bytes(4, "big") + body, "999999", "SerdeError"),
        (None, "a tombstone (null value)", "Tombstone"),
        (_trade_body(clients, topic, price="1.0000000000000000001"),
         "field price: '1.0000000000000000001' has more than 18 decimal places; Decimal(38, 18) would round it",
         "ColumnValueError"),
        (_trade_body(clients, topic, size="1" * 21),
         f"field size: '{'1' * 21}' has more than 20 integer digits; Decimal(38, 18) cannot hold it",
         "ColumnValueError"),
        (_trade_body(clients, topic, price="abc"), "field price: 'abc' is not a decimal number", "ColumnValueError"),
        (_trade_body(clients, topic, ts_event_ns=-3 * 10**18),
         "field ts_event_ns: -3000000000000000000 ns is outside DateTime64(9)'s range", "ColumnValueError"),
        (good[:5] + b"\xff" * 9, "cannot decode liqbot.Trade", "SerdeError"),
        (good[:-3], "cannot decode liqbot.Trade", "SerdeError"),
    ]
    # one partition (one key), good rows between the bad ones, so the order of outcomes is the offsets'
    sent: list[bytes | None] = []
    for value, _, _ in bad:
        sent += [good, value]
    sent.append(good)
    for value in sent:
        clients.producer.send_raw(topic, value, b"BTCUSDT")
    clients.producer.drain()
    with history_store.sink(settings) as sink:
        history_store.wait(_count("dead_letters"), len(bad), sink)
        history_store.wait(_count("trades"), len(bad) + 1, sink)
        letters = history_store.rows(
            "SELECT source, stage, error, error_type, hex(raw), offset FROM dead_letters ORDER BY offset")
        landed = history_store.rows("SELECT _offset, toString(price) FROM trades ORDER BY _offset")
        assert int(history_store.rows(_count("trades"))[0][0]) == len(bad) + 1
        assert sink.process.poll() is None
    assert [int(o) for o, _ in landed] == list(range(0, len(sent), 2))
    assert len(letters) == len(bad)
    for (source, stage, error, error_type, raw, offset), (value, reason, kind) in zip(letters, bad, strict=True):
        assert (source, stage, error_type) == (topic, "sink", kind)
        assert reason in error, error
        assert bytes.fromhex(raw) == (value or b"")  # the bytes as they came, for a fix and a replay
        assert int(offset) % 2 == 1
    counted = sink.tail(5)
    assert f"{len(bad)} dead letters" in counted


def test_redelivery_writes_nothing_twice_and_a_store_missing_rows_reads_them_again(
        settings: Settings, clients: Clients, history_store: Store) -> None:
    records = capture_records(BYBIT_CAPTURE, "bybit-linear")
    books = [r for r in records if isinstance(r, BookUpdate)]
    expected = _publish(clients, records)
    checksum = "SELECT count(), sum(cityHash64(_topic, _partition, _offset, event_id, ts_event_ns)) FROM book_updates"
    unique = "SELECT count(), uniqExact(_partition, _offset) FROM book_updates"
    with history_store.sink(settings, "--group", "first") as sink:
        _land(history_store, sink, expected)
        first = history_store.rows(checksum)
        landed_by = history_store.rows("SELECT toString(max(_inserted)) FROM book_updates")[0][0]
    # A new group has committed nothing, so Kafka offers it every record again: none is written twice, and the
    # records produced after it started land.
    with history_store.sink(settings, "--group", "second", "--instance", "second") as sink:
        _publish(clients, books[:100])
        history_store.wait(_count("book_updates"), len(books) + 100, sink)
        assert history_store.rows(unique)[0] == [len(books) + 100] * 2
        assert history_store.rows(f"{checksum} WHERE _inserted <= '{landed_by}'") == first
        both = history_store.rows(checksum)
        # the newest rows of a partition lost from the store (a backup restored, say), the group's commit past them
        newest = "_partition = 0 AND _offset > (SELECT max(_offset) - 50 FROM book_updates WHERE _partition = 0)"
        history_store.rows(f"DELETE FROM book_updates WHERE {newest} SETTINGS mutations_sync = 2")
        assert int(history_store.rows(_count("book_updates"))[0][0]) == len(books) + 50
    with history_store.sink(settings, "--group", "second", "--instance", "second") as sink:
        history_store.wait(_count("book_updates"), len(books) + 100, sink)
        assert history_store.rows(unique)[0] == [len(books) + 100] * 2
        assert history_store.rows(checksum) == both
    assert "lacks offset" in sink.tail(400), sink.tail(40)
