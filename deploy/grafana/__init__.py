"""Grafana for the pipeline: provisioning, the dashboards as JSON, and their PromQL against the metrics contract."""
