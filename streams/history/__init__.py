"""The ClickHouse history: tables from the Avro contract, migrations, the sink and SQL access."""
