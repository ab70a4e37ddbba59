"""Bybit v5: wire messages to typed records (parse), and later the client that only does sockets."""
