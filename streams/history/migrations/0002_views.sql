-- Views for analysis (docs/sql.md). Plain views: they read the tables as they are, so a replayed or refilled
-- history needs no rebuild; none of them is hot enough yet to pay for a materialised one.
-- `namespace` is the topic prefix a row came through: '' for the live topics, 'run-….' for a pipeline or replay
-- run. Every view keeps namespaces apart, so a run never mixes into the live history.

-- OHLCV per second from trades. Open and close by event time, then Kafka offset (two trades in one nanosecond).
CREATE VIEW IF NOT EXISTS bars_1s AS
SELECT
    replaceRegexpOne(_topic, 'market\\.trades$', '') AS namespace, venue, symbol,
    toStartOfSecond(ts_event_ns) AS bar_start,
    argMin(price, (ts_event_ns, _offset)) AS open, max(price) AS high, min(price) AS low,
    argMax(price, (ts_event_ns, _offset)) AS close,
    sum(size) AS volume, sum(multiplyDecimal(price, size, 18)) AS notional, count() AS trades,
    sumIf(size, taker_side = 'BUY') AS buy_volume, sumIf(size, taker_side = 'SELL') AS sell_volume
FROM trades
GROUP BY namespace, venue, symbol, bar_start;

-- OHLCV per minute: the seconds' bars folded (the same figures as from the trades themselves, tested).
CREATE VIEW IF NOT EXISTS bars_1m AS
SELECT
    s.namespace AS namespace, s.venue AS venue, s.symbol AS symbol, toStartOfMinute(s.bar_start) AS bar_start,
    argMin(s.open, s.bar_start) AS open, max(s.high) AS high, min(s.low) AS low, argMax(s.close, s.bar_start) AS close,
    sum(s.volume) AS volume, sum(s.notional) AS notional, sum(s.trades) AS trades,
    sum(s.buy_volume) AS buy_volume, sum(s.sell_volume) AS sell_volume
FROM bars_1s AS s
GROUP BY namespace, venue, symbol, bar_start;

-- Liquidation bursts: a symbol's liquidations with less than 5 s between one and the next. Notional at the
-- bankruptcy price; the side whose positions were liquidated most; the last trade price (by time, then offset) at
-- the burst's start, its end and 60 s after (NULL when no trade printed in the minute before the start), and the
-- range traded during it.
CREATE VIEW IF NOT EXISTS liquidation_bursts AS
WITH
    marked AS (
        SELECT
            replaceRegexpOne(_topic, 'market\\.liquidations$', '') AS namespace, venue, symbol, ts_event_ns,
            position_side, multiplyDecimal(bankruptcy_price, size, 18) AS notional,
            lagInFrame(ts_event_ns, 1, toDateTime64(0, 9, 'UTC')) OVER w AS previous_ns,
            row_number() OVER w AS n
        FROM liquidations
        WINDOW w AS (PARTITION BY namespace, venue, symbol ORDER BY ts_event_ns, _offset
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    numbered AS (
        SELECT *, sum(toUInt64(n = 1 OR dateDiff('millisecond', previous_ns, ts_event_ns) >= 5000)) OVER (
            PARTITION BY namespace, venue, symbol ORDER BY ts_event_ns, n
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS burst
        FROM marked
    ),
    bursts AS (
        SELECT namespace, venue, symbol, burst, min(ts_event_ns) AS start_ns, max(ts_event_ns) AS end_ns,
               count() AS liquidations, sum(notional) AS total_notional,
               sumIf(notional, position_side = 'LONG') AS long_notional,
               sumIf(notional, position_side = 'SHORT') AS short_notional
        FROM numbered GROUP BY namespace, venue, symbol, burst
    )
SELECT
    b.namespace AS namespace, b.venue AS venue, b.symbol AS symbol, b.burst AS burst, b.start_ns AS start_ns,
    b.end_ns AS end_ns, b.liquidations AS liquidations, b.total_notional AS notional,
    if(b.long_notional >= b.short_notional, 'LONG', 'SHORT') AS liquidated_side,
    argMaxIf(t.price, (t.ts_event_ns, t._offset), t.ts_event_ns BETWEEN b.start_ns - INTERVAL 60 SECOND AND b.start_ns)
        AS price_at_start,
    argMaxIf(t.price, (t.ts_event_ns, t._offset), t.ts_event_ns BETWEEN b.start_ns - INTERVAL 60 SECOND AND b.end_ns)
        AS price_at_end,
    argMaxIf(t.price, (t.ts_event_ns, t._offset),
             t.ts_event_ns BETWEEN b.start_ns - INTERVAL 60 SECOND AND b.end_ns + INTERVAL 60 SECOND) AS price_60s_after,
    minIf(t.price, t.ts_event_ns BETWEEN b.start_ns AND b.end_ns) AS low_during,
    maxIf(t.price, t.ts_event_ns BETWEEN b.start_ns AND b.end_ns) AS high_during,
    countIf(t.ts_event_ns BETWEEN b.start_ns AND b.end_ns) AS trades_during
FROM bursts AS b
LEFT JOIN (
    SELECT replaceRegexpOne(_topic, 'market\\.trades$', '') AS namespace, venue, symbol, ts_event_ns, _offset, price
    FROM trades
) AS t ON t.namespace = b.namespace AND t.venue = b.venue AND t.symbol = b.symbol
GROUP BY namespace, venue, symbol, burst, start_ns, end_ns, liquidations, notional, liquidated_side
SETTINGS join_use_nulls = 1;

-- Each order's life: the intent, its placement and fill or expiry, the taker exit (its id is derived from the
-- entry's, decision/ids.py `exit_order_id`), and net PnL in quote units: gross minus both fees minus the funding
-- its symbol paid between the fill and the exit (positions are per symbol; one position per symbol at a time).
CREATE VIEW IF NOT EXISTS order_life AS
WITH
    intents AS (
        SELECT replaceRegexpOne(_topic, 'orders\\.intents$', '') AS namespace, venue, symbol, client_order_id,
               concat('lx', substring(lower(hex(SHA256(concat(client_order_id, '|exit')))), 1, 32)) AS exit_id,
               ts_event_ns AS intent_ns, side, price, size, delta_bps, valid_for_ms, hold_ms,
               fill_probability AS predicted_fill_probability, expected_net_return AS predicted_net_return,
               model_version, prediction_id
        FROM order_intents
    ),
    events AS (
        SELECT replaceRegexpOne(_topic, 'orders\\.events$', '') AS namespace, client_order_id,
               minIf(ts_event_ns, status = 'ACCEPTED') AS placed_ns,
               argMax(status, (ts_event_ns, _offset)) AS final_status,
               minIf(ts_event_ns, status = 'FILLED') AS filled_ns,
               argMaxIf(last_fill_price, ts_event_ns, status IN ('FILLED', 'PARTIALLY_FILLED')) AS fill_price,
               sumIf(ifNull(fee, toDecimal128(0, 18)), status IN ('FILLED', 'PARTIALLY_FILLED')) AS fee,
               argMax(reason, (ts_event_ns, _offset)) AS last_reason,
               countIf(status = 'FILLED') > 0 AS filled
        FROM order_events GROUP BY namespace, client_order_id
    ),
    lives AS (
        SELECT i.namespace AS namespace, i.venue AS venue, i.symbol AS symbol, i.client_order_id AS client_order_id,
               i.intent_ns AS intent_ns, i.side AS side, i.price AS price, i.size AS size, i.delta_bps AS delta_bps,
               i.valid_for_ms AS valid_for_ms, i.hold_ms AS hold_ms, i.model_version AS model_version,
               i.prediction_id AS prediction_id, i.predicted_fill_probability AS predicted_fill_probability,
               i.predicted_net_return AS predicted_net_return, e.placed_ns AS placed_ns, e.final_status AS entry_status, e.filled AS filled,
               e.filled_ns AS filled_ns, e.fill_price AS entry_price, e.fee AS entry_fee,
               x.filled_ns AS exit_ns, x.fill_price AS exit_price, x.fee AS exit_fee, x.last_reason AS exit_reason
        FROM intents AS i
        LEFT JOIN events AS e ON e.namespace = i.namespace AND e.client_order_id = i.client_order_id
        LEFT JOIN events AS x ON x.namespace = i.namespace AND x.client_order_id = i.exit_id
        SETTINGS join_use_nulls = 1
    ),
    funding AS (
        SELECT replaceRegexpOne(_topic, 'positions$', '') AS namespace, venue, symbol, ts_event_ns, funding_paid
        FROM positions
    )
SELECT
    l.namespace AS namespace, l.venue AS venue, l.symbol AS symbol, l.client_order_id AS client_order_id,
    l.side AS side, l.price AS price, l.size AS size, l.delta_bps AS delta_bps, l.valid_for_ms AS valid_for_ms,
    l.hold_ms AS hold_ms, l.model_version AS model_version, l.prediction_id AS prediction_id,
    l.predicted_fill_probability AS predicted_fill_probability, l.predicted_net_return AS predicted_net_return,
    l.intent_ns AS intent_ns, l.placed_ns AS placed_ns, l.entry_status AS entry_status,
    ifNull(l.filled, false) AS filled, l.filled_ns AS filled_ns, l.entry_price AS entry_price,
    l.exit_ns AS exit_ns, l.exit_price AS exit_price, l.exit_reason AS exit_reason,
    if(l.side = 'BUY', 1, -1) * toFloat64(multiplyDecimal(l.exit_price - l.entry_price, l.size, 18)) AS gross_pnl,
    toFloat64(ifNull(l.entry_fee, 0) + ifNull(l.exit_fee, 0)) AS fees,
    argMaxIf(f.funding_paid, f.ts_event_ns, f.ts_event_ns <= l.exit_ns)
        - argMaxIf(f.funding_paid, f.ts_event_ns, f.ts_event_ns <= l.filled_ns) AS funding,
    gross_pnl - fees - ifNull(funding, 0) AS net_pnl,
    net_pnl / toFloat64(multiplyDecimal(l.entry_price, l.size, 18)) AS net_return
FROM lives AS l
LEFT JOIN funding AS f ON f.namespace = l.namespace AND f.venue = l.venue AND f.symbol = l.symbol
GROUP BY ALL
SETTINGS join_use_nulls = 1;

-- PnL per arm (the limit offset and the time the order rests): how often each arm fills and what it earns.
CREATE VIEW IF NOT EXISTS pnl_per_arm AS
SELECT namespace, delta_bps, valid_for_ms, count() AS orders, countIf(filled) AS fills,
       countIf(filled) / count() AS fill_rate, countIf(exit_ns IS NOT NULL) AS exits,
       sum(ifNull(net_pnl, 0)) AS net_pnl, sum(fees) AS fees, sum(ifNull(funding, 0)) AS funding,
       avgIf(net_return, exit_ns IS NOT NULL) AS mean_net_return,
       avg(predicted_fill_probability) AS mean_predicted_fill_probability,
       avg(predicted_net_return) AS mean_predicted_net_return
FROM order_life
GROUP BY namespace, delta_bps, valid_for_ms;

-- Calibration: the orders in deciles of their predicted fill probability; the predicted mean against the
-- realised fill rate, and the predicted net return against the realised one (filled and exited orders; an
-- unfilled order realised 0).
CREATE VIEW IF NOT EXISTS calibration AS
SELECT namespace, decile, count() AS orders,
       avg(predicted_fill_probability) AS predicted_fill_probability, avg(toFloat64(filled)) AS realised_fill_rate,
       avg(predicted_net_return) AS predicted_net_return,
       avg(if(filled, ifNull(net_return, 0), 0)) AS realised_net_return
FROM (
    SELECT *, ntile(10) OVER (PARTITION BY namespace ORDER BY predicted_fill_probability, client_order_id) AS decile
    FROM order_life
)
GROUP BY namespace, decile;

-- Feed latency per venue and record kind, in milliseconds: exchange -> receive (ingest's clock), receive ->
-- produce (the Kafka timestamp), produce -> sink (the row's insert time). On replayed captures the last two
-- measure the replay, not the feed.
CREATE VIEW IF NOT EXISTS feed_latency AS
WITH stages AS (
    SELECT namespace, venue, kind, dateDiff('microsecond', ts_exchange_ns, ts_recv_ns) / 1000 AS exchange_to_receive,
           dateDiff('microsecond', ts_recv_ns, _kafka_ts) / 1000 AS receive_to_produce,
           dateDiff('microsecond', _kafka_ts, _inserted) / 1000 AS produce_to_sink
    FROM (
        SELECT replaceRegexpOne(_topic, 'market\\.[a-z_]+$', '') AS namespace, venue, 'trade' AS kind,
               ts_exchange_ns, ts_recv_ns, _kafka_ts, _inserted FROM trades
        UNION ALL SELECT replaceRegexpOne(_topic, 'market\\.[a-z_]+$', ''), venue, 'liquidation', ts_exchange_ns,
               ts_recv_ns, _kafka_ts, _inserted FROM liquidations
        UNION ALL SELECT replaceRegexpOne(_topic, 'market\\.[a-z_]+$', ''), venue, 'book', ts_exchange_ns,
               ts_recv_ns, _kafka_ts, _inserted FROM book_updates
        UNION ALL SELECT replaceRegexpOne(_topic, 'market\\.[a-z_]+$', ''), venue, 'top_of_book', ts_exchange_ns,
               ts_recv_ns, _kafka_ts, _inserted FROM top_of_book
        UNION ALL SELECT replaceRegexpOne(_topic, 'market\\.[a-z_]+$', ''), venue, 'ticker', ts_exchange_ns,
               ts_recv_ns, _kafka_ts, _inserted FROM tickers
    )
)
SELECT namespace, venue, kind, count() AS records,
       quantileExact(0.5)(exchange_to_receive) AS exchange_to_receive_p50_ms,
       quantileExact(0.99)(exchange_to_receive) AS exchange_to_receive_p99_ms,
       quantileExact(0.5)(receive_to_produce) AS receive_to_produce_p50_ms,
       quantileExact(0.99)(receive_to_produce) AS receive_to_produce_p99_ms,
       quantileExact(0.5)(produce_to_sink) AS produce_to_sink_p50_ms,
       quantileExact(0.99)(produce_to_sink) AS produce_to_sink_p99_ms
FROM stages
GROUP BY namespace, venue, kind;
