"""Decision logic without I/O (features, scoring, strategy, risk, fills), called by the agents and by replay alike.

Nothing here imports Kafka, Faust, ClickHouse or sockets, or reads the wall clock: time comes from the records.
`tests/decision/test_import_rule.py` keeps it that way.
"""
