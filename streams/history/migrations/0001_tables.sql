-- The first tables: one per record kind, columns from schemas/*.avsc (streams/history/columns.py maps the types),
-- then the Kafka coordinates of each row. Ordered by (venue, hour, symbol, event time): one symbol over a time range
-- reads a few ranges per hour, and a venue's whole market in event-time order reads the key's prefix in order and
-- sorts one hour at a time (the replay's read). Deduplication of retried inserts needs the window on plain MergeTree.

-- Public trades. (liqbot.Trade, topic market.trades)
CREATE TABLE IF NOT EXISTS trades
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `taker_side` LowCardinality(String),
    `price` Decimal(38, 18),
    `size` Decimal(38, 18),
    `tick_direction` LowCardinality(Nullable(String)),
    `block_trade` Bool,
    `rpi` Nullable(Bool),
    `seq` Nullable(Int64),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Forced liquidations, side = liquidated position. (liqbot.Liquidation, topic market.liquidations)
CREATE TABLE IF NOT EXISTS liquidations
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `position_side` LowCardinality(String),
    `bankruptcy_price` Decimal(38, 18),
    `size` Decimal(38, 18),
    `feed` LowCardinality(String),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Order-book snapshots, deltas and resync markers. (liqbot.BookUpdate, topic market.book)
CREATE TABLE IF NOT EXISTS book_updates
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `update_type` LowCardinality(String),
    `depth` Int32,
    `update_id` Int64,
    `seq` Nullable(Int64),
    `bids.price` Array(Decimal(38, 18)),
    `bids.size` Array(Decimal(38, 18)),
    `asks.price` Array(Decimal(38, 18)),
    `asks.size` Array(Decimal(38, 18)),
    `prev_update_id` Nullable(Int64),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Best bid/ask, mid and microprice after each book update. (liqbot.TopOfBook, topic market.top_of_book)
CREATE TABLE IF NOT EXISTS top_of_book
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `update_id` Int64,
    `bid_price` Decimal(38, 18),
    `bid_size` Decimal(38, 18),
    `ask_price` Decimal(38, 18),
    `ask_size` Decimal(38, 18),
    `mid` Float64,
    `microprice` Float64,
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Merged ticker: funding, open interest, mark and index price. (liqbot.Ticker, topic market.tickers)
CREATE TABLE IF NOT EXISTS tickers
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `last_price` Nullable(Decimal(38, 18)),
    `mark_price` Nullable(Decimal(38, 18)),
    `index_price` Nullable(Decimal(38, 18)),
    `funding_rate` Nullable(Decimal(38, 18)),
    `next_funding_time_ns` Nullable(DateTime64(9, 'UTC')),
    `funding_interval_hours` Nullable(Int32),
    `open_interest` Nullable(Decimal(38, 18)),
    `open_interest_value` Nullable(Decimal(38, 18)),
    `bid1_price` Nullable(Decimal(38, 18)),
    `ask1_price` Nullable(Decimal(38, 18)),
    `volume_24h` Nullable(Decimal(38, 18)),
    `turnover_24h` Nullable(Decimal(38, 18)),
    `seq` Nullable(Int64),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Tick size, lot size, min order; latest per symbol. (liqbot.Instrument, topic market.instruments)
CREATE TABLE IF NOT EXISTS instruments
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `status` LowCardinality(String),
    `contract_type` LowCardinality(Nullable(String)),
    `base_coin` LowCardinality(String),
    `quote_coin` LowCardinality(String),
    `tick_size` Decimal(38, 18),
    `qty_step` Decimal(38, 18),
    `min_order_qty` Decimal(38, 18),
    `max_order_qty` Decimal(38, 18),
    `min_notional` Nullable(Decimal(38, 18)),
    `max_leverage` Nullable(Decimal(38, 18)),
    `funding_interval_minutes` Nullable(Int32),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Open interest history (REST). (liqbot.OpenInterest, topic market.open_interest)
CREATE TABLE IF NOT EXISTS open_interest
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `interval` LowCardinality(String),
    `open_interest` Decimal(38, 18),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Funding rates applied at funding times (REST); small and kept for good. (liqbot.FundingRate, topic market.funding)
CREATE TABLE IF NOT EXISTS funding_rates
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_exchange_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `funding_rate` Decimal(38, 18),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Feature vectors in event time. (liqbot.FeatureVector, topic features)
CREATE TABLE IF NOT EXISTS feature_vectors
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `feature_spec` LowCardinality(String),
    `values` Array(Float64),
    `side` LowCardinality(Nullable(String)),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per-arm expected net return and fill probability. (liqbot.Prediction, topic predictions)
CREATE TABLE IF NOT EXISTS predictions
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `model_version` LowCardinality(String),
    `feature_spec` LowCardinality(String),
    `arms.delta_bps` Array(Float64),
    `arms.valid_for_ms` Array(Int64),
    `arms.expected_net_return` Array(Float64),
    `arms.fill_probability` Array(Float64),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Orders that passed every risk rule. (liqbot.OrderIntent, topic orders.intents)
CREATE TABLE IF NOT EXISTS order_intents
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
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Cancel requests from the risk rules (dead-man, kill switch, halt, breaker). (liqbot.OrderCancel, topic orders.cancels)
CREATE TABLE IF NOT EXISTS order_cancels
(
    `venue` LowCardinality(String),
    `symbol` LowCardinality(String),
    `event_id` String,
    `ts_event_ns` DateTime64(9, 'UTC'),
    `ts_recv_ns` DateTime64(9, 'UTC'),
    `client_order_id` Nullable(String),
    `reason` LowCardinality(String),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Accepted, rejected, filled, cancelled, expired. (liqbot.OrderEvent, topic orders.events)
CREATE TABLE IF NOT EXISTS order_events
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
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Position and PnL after each change. (liqbot.Position, topic positions)
CREATE TABLE IF NOT EXISTS positions
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
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_event_ns)
ORDER BY (venue, toStartOfHour(ts_event_ns), symbol, ts_event_ns)
SETTINGS non_replicated_deduplication_window = 10000;

-- Raw input that failed parse, validation or decode, with the reason. (liqbot.DeadLetter, topic deadletter)
CREATE TABLE IF NOT EXISTS dead_letters
(
    `source` LowCardinality(String),
    `stage` LowCardinality(String),
    `error` String,
    `error_type` LowCardinality(String),
    `raw` String,
    `key` Nullable(String),
    `partition` Nullable(Int32),
    `offset` Nullable(Int64),
    `ts_recv_ns` Nullable(DateTime64(9, 'UTC')),
    `ts_dead_ns` DateTime64(9, 'UTC'),
    `_topic` LowCardinality(String),
    `_topic_id` LowCardinality(String),
    `_partition` Int32,
    `_offset` Int64,
    `_kafka_ts` DateTime64(3, 'UTC'),
    `_schema_id` UInt64,
    `_inserted` DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX kafka_offset _offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts_dead_ns)
ORDER BY (source, ts_dead_ns)
SETTINGS non_replicated_deduplication_window = 10000;
