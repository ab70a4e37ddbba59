"""Migrations on chDB's real engine: applied once, in order, recorded; and no `.avsc` field without its column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from liqbot.errors import LiqbotError
from schemas import load_all
from streams.history.columns import KAFKA_COLUMNS, Column, columns_of
from streams.history.store import MIGRATIONS_DIR, StoreSettings, apply_migrations, connect, migrations
from streams.topics import TOPICS


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    made = connect(StoreSettings(path=tmp_path / "ch"))
    yield made
    made.close()  # chDB opens one directory per process at a time


def _table_columns(client: Client, table: str) -> dict[str, str]:
    rows = client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                        "AND table = {t:String}", parameters={"t": table}).result_rows
    return {name: ctype for name, ctype in rows}


def missing_columns(client: Client, table: str, columns: tuple[Column, ...]) -> list[str]:
    """Fields of the schema whose column is absent from the table or of another type."""
    found = _table_columns(client, table)
    return [f"{c.name} {c.clickhouse_type} (table has {found.get(c.name, 'nothing')})" for c in columns
            if found.get(c.name) != c.clickhouse_type]


def test_migrations_apply_once_in_order_and_are_recorded(client: Client) -> None:
    names = [m.name for m in migrations()]
    assert names == sorted(names) and names[0] == "0001_tables.sql"
    assert apply_migrations(client) == names
    assert apply_migrations(client) == []  # idempotent: a restart applies nothing
    recorded = client.query("SELECT version, name FROM schema_migrations ORDER BY version").result_rows
    assert [n for _, n in recorded] == names
    assert [v for v, _ in recorded] == [m.version for m in migrations()]


def test_every_avsc_field_has_its_column_in_its_table(client: Client) -> None:
    apply_migrations(client)
    schemas = load_all()
    assert {s.schema for s in TOPICS} == set(schemas), "every record kind has a topic, so a table"
    for spec in TOPICS:
        assert missing_columns(client, spec.table, columns_of(schemas[spec.schema].raw)) == [], spec.table
        kafka = _table_columns(client, spec.table)
        assert [(n, kafka.get(n)) for n, _ in KAFKA_COLUMNS] == list(KAFKA_COLUMNS)


def test_a_new_avsc_field_without_a_migration_is_caught(client: Client) -> None:
    apply_migrations(client)
    trade: dict[str, Any] = dict(load_all()["liqbot.Trade"].raw)
    trade["fields"] = [*trade["fields"], {"name": "maker_order_id", "type": ["null", "string"], "default": None}]
    assert missing_columns(client, "trades", columns_of(trade)) == [
        "maker_order_id Nullable(String) (table has nothing)"]


def test_tables_keep_prices_exact_times_in_ns_and_dedup_retries(client: Client) -> None:
    apply_migrations(client)
    trades = _table_columns(client, "trades")
    assert trades["price"] == "Decimal(38, 18)" and trades["ts_event_ns"] == "DateTime64(9, 'UTC')"
    assert trades["taker_side"] == "LowCardinality(String)" and trades["symbol"] == "LowCardinality(String)"
    book = _table_columns(client, "book_updates")
    assert book["bids.price"] == "Array(Decimal(38, 18))" and book["asks.size"] == "Array(Decimal(38, 18))"
    assert _table_columns(client, "predictions")["arms.fill_probability"] == "Array(Float64)"
    settings = client.query("SELECT engine_full FROM system.tables WHERE name = 'trades'").result_rows[0][0]
    assert "PARTITION BY toDate(ts_event_ns)" in settings
    assert "ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)" in settings
    assert "non_replicated_deduplication_window = 10000" in settings


def test_an_edited_applied_migration_is_refused(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_one.sql").write_text("CREATE TABLE IF NOT EXISTS one (x Int8) ENGINE = MergeTree ORDER BY x;\n")
    assert apply_migrations(client, folder) == ["0001_one.sql"]
    (folder / "0001_one.sql").write_text("CREATE TABLE IF NOT EXISTS one (x Int16) ENGINE = MergeTree ORDER BY x;\n")
    with pytest.raises(LiqbotError, match=r"migration 0001_one\.sql changed after it was applied"):
        apply_migrations(client, folder)


def test_a_misnamed_or_repeated_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_one.sql").write_text("SELECT 1;")
    with pytest.raises(LiqbotError, match=r"name it NNNN_what\.sql"):
        migrations(tmp_path)
    (tmp_path / "1_one.sql").unlink()
    (tmp_path / "0002_a.sql").write_text("SELECT 1;")
    (tmp_path / "0002_b.sql").write_text("SELECT 1;")
    with pytest.raises(LiqbotError, match="share version 2"):
        migrations(tmp_path)


def test_the_project_migrations_folder_holds_only_migrations() -> None:
    assert sorted(p.name for p in MIGRATIONS_DIR.iterdir() if p.suffix == ".sql") == [m.name for m in migrations()]


def test_a_server_url_never_carries_the_password() -> None:
    with pytest.raises(LiqbotError, match="LIQBOT_CLICKHOUSE_PASSWORD"):
        connect(StoreSettings(url="http://writer:secret@127.0.0.1:8123/liqbot"))
    where = StoreSettings(url="https://writer@ch.example:8443/liqbot").where
    assert where == "ClickHouse at https://writer@ch.example:8443/liqbot"
