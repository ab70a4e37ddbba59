"""Prometheus metrics of everything that moves records (one registry, the default one)."""

from prometheus_client import Counter

__all__ = ["DEAD_LETTERS", "PRODUCE_FAILURES", "RECORDS_CONSUMED", "RECORDS_PRODUCED", "SERDE_ERRORS"]

RECORDS_PRODUCED = Counter("liqbot_records_produced_total", "Records acknowledged by Kafka", ["topic"])
PRODUCE_FAILURES = Counter("liqbot_produce_failures_total", "Records Kafka failed to take", ["topic"])
RECORDS_CONSUMED = Counter("liqbot_records_consumed_total", "Records consumed and decoded", ["topic"])
SERDE_ERRORS = Counter("liqbot_serde_errors_total", "Records that failed to encode or decode", ["topic", "stage"])
DEAD_LETTERS = Counter("liqbot_dead_letters_total", "Inputs sent to the dead-letter topic", ["source", "stage"])
