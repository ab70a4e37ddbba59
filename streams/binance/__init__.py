"""Binance USD-M futures: public market-data frames and REST replies to typed records (parse)."""
