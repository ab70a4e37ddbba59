-- Backtests (`liqbot backtest`, docs/backtest.md): each run's manifest and what the live steps made of the replayed
-- history. Result tables carry their record's columns (schemas/*.avsc, as the topic tables do), then `_run` (the run's
-- name), `_partition` (the Kafka partition whose state made the row, as a live worker keeps one state per partition)
-- and `_seq` (the row's place in the run's output order). A run is written once and never changed.

-- One row per run: what it read (manifest), what it made (summary), and the hashes that compare runs.
CREATE TABLE IF NOT EXISTS backtest_runs
(
    `run` String,
    `created_ns` DateTime64(9, 'UTC'),
    `namespace` String,
    `from_ns` DateTime64(9, 'UTC'),
    `to_ns` DateTime64(9, 'UTC'),
    `symbols` Array(String),
    `model_version` LowCardinality(String),
    `config_hash` String,
    `code_version` String,
    `git_commit` Nullable(String),
    `input_rows` Map(LowCardinality(String), UInt64),
    `input_hash` String,
    `result_hash` String,
    `decision_points` UInt64,
    `predictions` UInt64,
    `intents` UInt64,
    `cancels` UInt64,
    `order_events` UInt64,
    `fills` UInt64,
    `realised_pnl` Float64,
    `fees` Float64,
    `funding` Float64,
    `net_pnl` Float64,
    `wall_s` Float64,
    `events_per_s` Float64
)
ENGINE = MergeTree
ORDER BY run;

-- Intents the decide step made. (liqbot.OrderIntent)
CREATE TABLE IF NOT EXISTS backtest_intents
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `client_order_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `mode` LowCardinality(String),
    `side` LowCardinality(String),
    `price` Decimal(38, 18),
    `size` Decimal(38, 18),
    `post_only` Bool,
    `reduce_only` Bool,
    `valid_for_ms` Int64,
    `hold_ms` Int64,
    `take_profit_price` Nullable(Decimal(38, 18)),
    `stop_loss_price` Nullable(Decimal(38, 18)),
    `delta_bps` Float64,
    `expected_net_return` Float64,
    `fill_probability` Float64,
    `model_version` LowCardinality(String),
    `prediction_id` String,
    `_run` String,
    `_partition` Int32,
    `_seq` UInt64
)
ENGINE = MergeTree
ORDER BY (_run, _seq);

-- The paper venue's order events. (liqbot.OrderEvent)
CREATE TABLE IF NOT EXISTS backtest_order_events
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `client_order_id` String,
    `venue_order_id` Nullable(String),
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `status` LowCardinality(String),
    `side` LowCardinality(String),
    `price` Decimal(38, 18),
    `size` Decimal(38, 18),
    `filled_size` Decimal(38, 18),
    `last_fill_price` Nullable(Decimal(38, 18)),
    `last_fill_size` Nullable(Decimal(38, 18)),
    `fee` Nullable(Decimal(38, 18)),
    `liquidity` LowCardinality(Nullable(String)),
    `reason` LowCardinality(Nullable(String)),
    `_run` String,
    `_partition` Int32,
    `_seq` UInt64
)
ENGINE = MergeTree
ORDER BY (_run, _seq);

-- Fills: the order events that filled (entries as maker, exits as taker), with their notional.
CREATE VIEW IF NOT EXISTS backtest_fills AS
SELECT _run, _partition, _seq, venue, symbol, client_order_id, ts_event_ns, side, last_fill_price, last_fill_size,
       multiplyDecimal(last_fill_price, last_fill_size, 18) AS notional, fee, liquidity, reason
FROM backtest_order_events
WHERE status IN ('FILLED', 'PARTIALLY_FILLED');

-- Positions after each change, as the paper venue published them. (liqbot.Position)
CREATE TABLE IF NOT EXISTS backtest_positions
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `mode` LowCardinality(String),
    `size` Decimal(38, 18),
    `entry_price` Nullable(Decimal(38, 18)),
    `mark_price` Nullable(Decimal(38, 18)),
    `realised_pnl` Float64,
    `unrealised_pnl` Float64,
    `fees_paid` Float64,
    `funding_paid` Float64,
    `equity` Float64,
    `_run` String,
    `_partition` Int32,
    `_seq` UInt64
)
ENGINE = MergeTree
ORDER BY (_run, _seq);

-- The equity curve: after each position, its partition's paper account and the run's net PnL over all partitions.
CREATE TABLE IF NOT EXISTS backtest_equity
(
    `_run` String,
    `_seq` UInt64,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `_partition` Int32,
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `account_equity` Float64,
    `net_pnl` Float64
)
ENGINE = MergeTree
ORDER BY (_run, _seq);
