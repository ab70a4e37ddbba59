"""A real Apache Kafka broker (KRaft, one node) from Maven Central artifacts, without Docker."""
