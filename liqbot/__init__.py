"""liqbot: a liquidation-driven trading pipeline for Bybit USDT perpetuals on Kafka."""

__version__ = "0.1.0"
