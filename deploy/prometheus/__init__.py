"""Prometheus for the pipeline: the alert rules, promtool and a loopback server, from Debian's package."""
