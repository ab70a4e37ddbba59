"""The provisioned Grafana dashboards: their queries, as Prometheus runs them, and which of them return nothing."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liqbot.errors import LiqbotError

__all__ = ["DASHBOARDS_DIR", "PROVISIONING_DIR", "Query", "dashboards", "panels", "queries",
           "queries_without_data", "substitute"]

GRAFANA_DIR = Path(__file__).parent
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"

# What Grafana puts in place of its own variables: `$__rate_interval` is four scrape intervals (15 s here,
# the datasource's timeInterval) so that a rate always has two samples; a template variable at "All" is `.*`.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
ALL = ".*"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$")

Dashboard = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel's target, or what a template variable lists."""

    dashboard: str  # the dashboard's uid
    panel: str  # the panel's title, or `$name` for a variable
    ref_id: str
    expr: str  # as written, Grafana's variables included

    def promql(self, values: Mapping[str, str] | None = None) -> str:
        """The expression as Prometheus receives it, every variable at `values` or All."""
        return substitute(self.expr, values or {})


def dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, Dashboard]:
    """Every dashboard JSON file of the directory, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Dashboard) -> list[Query]:
    """The panels' PromQL targets, then each query variable's `label_values` as the PromQL it stands for."""
    uid = dashboard.get("uid", "")
    found = [Query(uid, panel.get("title", ""), target.get("refId", ""), target["expr"])
             for panel in panels(dashboard) for target in panel.get("targets", []) if "expr" in target]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append(Query(uid, f"${variable['name']}", "var", _variable_promql(variable)))
    return found


def _variable_promql(variable: dict[str, Any]) -> str:
    """`label_values(selector, label)` as `group by (label) (selector)`: the same series, one per value."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = _LABEL_VALUES.match(text)
    if match is None:
        raise LiqbotError(f"variable {variable['name']}: only label_values(selector, label) is used here: {text!r}")
    return f"group by ({match.group(2)}) ({match.group(1)})"


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with Grafana's variables replaced: `values`, else Grafana's own, else All (`.*`)."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, GRAFANA_VARIABLES.get(name, ALL))

    return _VARIABLE.sub(value, expr)


def queries_without_data(base_url: str, *, values: Mapping[str, str] | None = None,
                         directory: Path = DASHBOARDS_DIR, timeout_s: float = 10.0) -> list[Query]:
    """The queries of every dashboard that return no series from the Prometheus at `base_url` right now.

    A query Prometheus refuses raises: that is a broken panel, not a quiet one.
    """
    return [query for dashboard in dashboards(directory).values() for query in queries(dashboard)
            if not _instant(base_url, query.promql(values), timeout_s)]


def _instant(base_url: str, promql: str, timeout_s: float) -> list[Any]:
    """The series of one instant query (`/api/v1/query`)."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:  # Prometheus answers 400 with the parse error in the body
        body = json.load(exc)
    if body.get("status") != "success":
        raise LiqbotError(f"Prometheus refused {promql!r}: {body.get('error', body)}")
    result: list[Any] = body["data"]["result"]
    return result
