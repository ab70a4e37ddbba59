"""Apicurio Registry 3 (Confluent-compatible ccompat/v7 API) from Maven Central, state kept in Kafka."""
