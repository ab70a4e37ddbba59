-- The safety controls' audit log: every kill switch, resume, dead-man arm, heartbeat and disarm, and every firing
-- of the dead-man switch by a worker. (liqbot.ControlCommand, topic control)
CREATE TABLE IF NOT EXISTS control_commands
(
    `command_id` String,
    `scope` LowCardinality(String),
    `action` LowCardinality(String),
    `operator` LowCardinality(String),
    `reason` LowCardinality(String),
    `ts_issued_ns` DateTime64(9, 'UTC'),
    `dead_man_timeout_s` Nullable(Float64),
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
PARTITION BY toDate(ts_issued_ns)
ORDER BY (scope, ts_issued_ns)
SETTINGS non_replicated_deduplication_window = 10000;
