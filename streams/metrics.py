"""Prometheus metrics of everything that moves records (one registry, the default one)."""

from prometheus_client import Counter, Histogram

__all__ = [
    "DEAD_LETTERS", "EXCHANGE_TO_RECEIVE", "FRAMES_RECEIVED", "GAPS", "PARSE_ERRORS", "PRODUCE_FAILURES",
    "RECEIVE_TO_PRODUCE", "RECONNECTS", "RECORDS_CONSUMED", "RECORDS_PRODUCED", "SERDE_ERRORS",
]

_LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

RECORDS_PRODUCED = Counter("liqbot_records_produced_total", "Records acknowledged by Kafka", ["topic"])
PRODUCE_FAILURES = Counter("liqbot_produce_failures_total", "Records Kafka failed to take", ["topic"])
RECORDS_CONSUMED = Counter("liqbot_records_consumed_total", "Records consumed and decoded", ["topic"])
SERDE_ERRORS = Counter("liqbot_serde_errors_total", "Records that failed to encode or decode", ["topic", "stage"])
DEAD_LETTERS = Counter("liqbot_dead_letters_total", "Inputs sent to the dead-letter topic", ["source", "stage"])
FRAMES_RECEIVED = Counter("liqbot_frames_received_total", "Venue frames received, by what they were", ["venue", "kind"])
PARSE_ERRORS = Counter("liqbot_parse_errors_total", "Venue frames that failed to parse", ["venue"])
RECONNECTS = Counter("liqbot_reconnects_total", "Venue connections re-established", ["venue"])
GAPS = Counter("liqbot_book_gaps_total", "Order-book sequence gaps (book dropped until a snapshot)", ["venue"])
EXCHANGE_TO_RECEIVE = Histogram("liqbot_exchange_to_receive_seconds", "Exchange message time to local receive",
                                ["venue"], buckets=_LATENCY_BUCKETS_S)
RECEIVE_TO_PRODUCE = Histogram("liqbot_receive_to_produce_seconds", "Local receive to handed to the producer",
                               ["venue"], buckets=_LATENCY_BUCKETS_S)
