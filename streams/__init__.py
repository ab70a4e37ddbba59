"""Everything that moves records: venue connectors, serde, topics, producers, consumers."""
