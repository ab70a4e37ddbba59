"""The provisioned Grafana dashboards (no Grafana server here): valid dashboard JSON, PromQL that the real promtool
parses, only metrics and labels of docs/metrics.md, and the no-data check against a real Prometheus."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from deploy.grafana.dashboards import (
    DASHBOARDS_DIR,
    PROVISIONING_DIR,
    Query,
    dashboards,
    panels,
    queries,
    queries_without_data,
    substitute,
)
from deploy.grafana.promql import Contract, expression_problems, metric_names
from deploy.kafka.broker import free_port
from deploy.prometheus import server
from deploy.prometheus.install import tools
from liqbot.errors import LiqbotError

Dashboard = dict[str, Any]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "table", "row"}
GRID_COLUMNS = 24
BUILTINS = {"__rate_interval", "__interval", "__range", "datasource"}
_USED_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return tools(say=lambda _: None).promtool


def _structure_problems(dashboard: Dashboard) -> list[str]:
    """The dashboard itself: uid, title, schema version, variables, and each panel through `_panel_problems`."""
    uid = dashboard.get("uid", "")
    problems = [] if re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) else [f"uid {uid!r}: 1 to 40 of [A-Za-z0-9_-]"]
    problems += [f"{uid}: no {key}" for key in ("title", "schemaVersion", "panels", "templating")
                 if key not in dashboard]
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])} | BUILTINS
    ids = [str(panel.get("id")) for panel in panels(dashboard)]
    problems += [f"{uid}: panel id {i} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for panel in panels(dashboard):
        problems += [f"{uid} / {panel.get('title')}: {p}" for p in _panel_problems(panel, defined)]
    return problems + _overlaps(dashboard)


def _panel_problems(panel: dict[str, Any], variables: set[str]) -> list[str]:
    problems = [] if isinstance(panel.get("id"), int) else ["no integer id"]
    if panel.get("type") not in PANEL_TYPES:
        problems.append(f"type {panel.get('type')!r} is not one of {sorted(PANEL_TYPES)}")
    grid = panel.get("gridPos", {})
    if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["x"] + grid["w"] > GRID_COLUMNS:
        problems.append(f"gridPos {grid} is not within the {GRID_COLUMNS}-column grid")
    if panel.get("type") == "row":
        return problems
    if panel.get("datasource") != DATASOURCE:
        problems.append(f"datasource {panel.get('datasource')} is not {DATASOURCE}")
    targets = panel.get("targets", [])
    ref_ids = [t.get("refId") for t in targets]
    if not targets or len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
        problems.append(f"targets need distinct refIds, got {ref_ids}")
    for target in targets:
        if target.get("datasource") != DATASOURCE or not target.get("expr"):
            problems.append(f"target {target.get('refId')}: needs an expr and the panel's datasource")
        used = {next(g for g in m.groups() if g) for m in _USED_VARIABLE.finditer(target.get("expr", ""))}
        problems += [f"target {target.get('refId')}: ${name} is no variable of the dashboard"
                     for name in sorted(used - variables)]
    if "unit" not in panel.get("fieldConfig", {}).get("defaults", {}):
        problems.append("no unit (fieldConfig.defaults.unit)")
    return problems + _unit_problems(panel)


def _unit_problems(panel: dict[str, Any]) -> list[str]:
    """Units that follow from the queries: durations in seconds, amounts in the quote currency, ratios."""
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    wanted = set()
    for expr in (t.get("expr", "") for t in panel.get("targets", [])):
        names = metric_names(expr)
        if ("histogram_quantile" in expr and "_seconds_bucket" in expr) or "time() -" in expr or \
                any(n.endswith("lag_seconds") for n in names):
            wanted.add("s")
        wanted |= {"currencyUSD" for n in names if n.endswith("_quote")}
        wanted |= {"percentunit" for n in names if n.endswith("_ratio")}
    return [f"unit {unit!r}, but its queries are in {w}" for w in sorted(wanted) if unit != w]


def _overlaps(dashboard: Dashboard) -> list[str]:
    cells: dict[tuple[int, int], str] = {}
    problems = []
    for panel in dashboard.get("panels", []):
        grid = panel.get("gridPos", {})
        for x in range(grid.get("x", 0), grid.get("x", 0) + grid.get("w", 0)):
            for y in range(grid.get("y", 0), grid.get("y", 0) + grid.get("h", 0)):
                if (x, y) in cells:
                    problems.append(f"{panel.get('title')} overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = panel.get("title", "")
            else:
                continue
            break
    return problems


def _all() -> dict[str, Dashboard]:
    return dashboards()


def test_the_five_dashboards_exist() -> None:
    titles = sorted(d["title"] for d in _all().values())
    assert titles == ["liqbot / Consumer lag", "liqbot / Latency", "liqbot / Liquidation activity",
                      "liqbot / Pipeline health", "liqbot / PnL and positions"]


def test_every_dashboard_is_well_formed() -> None:
    problems = [p for d in _all().values() for p in _structure_problems(d)]
    assert problems == []
    uids = [d["uid"] for d in _all().values()]
    assert len(set(uids)) == len(uids)


def _broken(mutate: str) -> Dashboard:
    dashboard = copy.deepcopy(_all()["trading.json"])
    first, second = dashboard["panels"][0], dashboard["panels"][1]
    if mutate == "duplicate id":
        second["id"] = first["id"]
    elif mutate == "off the grid":
        first["gridPos"]["x"] = 20
    elif mutate == "overlap":
        second["gridPos"] = dict(first["gridPos"])
    elif mutate == "no datasource":
        del first["datasource"]
    elif mutate == "unknown variable":
        first["targets"][0]["expr"] = 'sum(liqbot_equity_quote{instance=~"$worker"})'
    elif mutate == "wrong unit":
        first["fieldConfig"]["defaults"]["unit"] = "short"
    elif mutate == "bad uid":
        dashboard["uid"] = "liqbot trading"
    return dashboard


@pytest.mark.parametrize(("mutate", "expected"), [
    ("duplicate id", "panel id 1 used twice"), ("off the grid", "not within the 24-column grid"),
    ("overlap", "overlaps Equity"), ("no datasource", "datasource None"),
    ("unknown variable", "$worker is no variable"), ("wrong unit", "unit 'short', but its queries are in currencyUSD"),
    ("bad uid", "uid 'liqbot trading'"),
])
def test_the_structure_check_rejects_a_broken_dashboard(mutate: str, expected: str) -> None:
    assert any(expected in p for p in _structure_problems(_broken(mutate)))


def test_provisioning_points_at_the_dashboards_and_the_datasource_they_name() -> None:
    datasources = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    for dashboard in _all().values():
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
        assert variable["type"] == "datasource" and variable["current"]["value"] == source["uid"]
    providers = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "liqbot.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and providers["apiVersion"] == 1
    # the container path is the compose mount of DASHBOARDS_DIR (tests/test_compose.py checks the mount)
    assert provider["options"]["path"].endswith("/liqbot") and sorted(DASHBOARDS_DIR.glob("*.json"))


def _all_queries() -> list[Query]:
    return [q for d in _all().values() for q in queries(d)]


def _promtool_problems(promtool: Path, exprs: dict[str, str], tmp_path: Path) -> str:
    """promtool 2.42 has no PromQL-only check: each expression becomes a recording rule of one rules file."""
    rules = [{"record": name, "expr": expr} for name, expr in exprs.items()]
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    run = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    return "" if run.returncode == 0 else run.stdout + run.stderr


def _record_name(query: Query, index: int) -> str:
    return re.sub(r"\W", "_", f"panel:{query.dashboard}:{index}:{query.ref_id}")


def test_every_query_parses_with_promtool(promtool: Path, tmp_path: Path) -> None:
    found = _all_queries()
    assert len(found) > 50
    exprs = {_record_name(q, i): q.promql() for i, q in enumerate(found)}
    assert _promtool_problems(promtool, exprs, tmp_path) == ""


def test_promtool_rejects_a_broken_query(promtool: Path, tmp_path: Path) -> None:
    unclosed = 'sum by (venue) (rate(liqbot_frames_received_total{venue=~"$venue"}[$__rate_interval])'
    exprs = {"panel:good": "sum(rate(liqbot_sink_rows_total[1m]))", "panel:bad": substitute(unclosed, {})}
    out = _promtool_problems(promtool, exprs, tmp_path)
    assert '"panel:bad": could not parse expression' in out and "unclosed left parenthesis" in out


def test_variables_are_substituted_as_grafana_does() -> None:
    expr = 'rate(x{symbol=~"$symbol", group=~"${group}"}[$__rate_interval])'
    assert substitute(expr, {}) == 'rate(x{symbol=~".*", group=~".*"}[1m])'
    assert substitute(expr, {"symbol": "BTCUSDT", "__rate_interval": "10s"}) == \
        'rate(x{symbol=~"BTCUSDT", group=~".*"}[10s])'


def test_variables_list_label_values_as_promql() -> None:
    variables = [q for q in _all_queries() if q.ref_id == "var"]
    assert {q.panel for q in variables} == {"$group", "$venue", "$symbol"}
    assert 'group by (symbol) (liqbot_market_last_event_timestamp_seconds{kind="liquidation"})' in \
        [q.expr for q in variables]


def test_every_query_uses_only_documented_metrics_and_labels() -> None:
    contract = Contract.load()
    problems = {f"{q.dashboard} / {q.panel}": expression_problems(q.expr, contract) for q in _all_queries()}
    assert {k: v for k, v in problems.items() if v} == {}
    used = {contract.resolve(name) for q in _all_queries() for name in metric_names(q.expr)}
    # a metric added to the contract is shown, or named here as left off on purpose
    assert set(contract.metrics) - {m.name for m in used if m} == {"python_info"}


@pytest.mark.parametrize(("expr", "expected"), [
    ("sum(rate(liqbot_frames_total[1m]))", "liqbot_frames_total: not in docs/metrics.md"),
    ('sum(liqbot_equity_quote{venue="bybit"})', "liqbot_equity_quote: no label 'venue'"),
    ("sum by (symbol) (rate(liqbot_sink_rows_total[1m]))", "by (symbol): no metric here has that label"),
    ("rate(liqbot_equity_quote[5m])", "rate(liqbot_equity_quote): gauge, not a counter"),
    ("histogram_quantile(0.99, sum by (agent) (rate(liqbot_agent_process_seconds_bucket[1m])))",
     "`le` missing from its by clause"),
    ("histogram_quantile(0.99, sum by (le) (rate(liqbot_agent_process_seconds_sum[1m])))", "not a _bucket series"),
    ("histogram_quantile(0.99, rate(liqbot_agent_process_seconds_bucket[1m]))", "write it as histogram_quantile"),
])
def test_the_contract_check_rejects(expr: str, expected: str) -> None:
    assert any(expected in problem for problem in expression_problems(expr, Contract.load()))


def test_metric_names_leave_out_functions_labels_strings_and_durations() -> None:
    expr = ('time() - max by (symbol, kind) (liqbot_market_last_event_timestamp_seconds{kind!="x{y}", symbol=~"a"})'
            " > 1e3 or on (symbol) deriv(kafka_partition_latest_offset[5m] offset 1h) and bool liqbot_pnl_quote")
    assert metric_names(expr) == {"liqbot_market_last_event_timestamp_seconds", "kafka_partition_latest_offset",
                                  "liqbot_pnl_quote"}


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (Debian's 2.42, loopback, its own storage) scraping a registry of this test every 1 s."""
    registry = CollectorRegistry()
    Gauge("liqbot_build_info", "which process", ["process", "version"], registry=registry).labels("sink", "0").set(1)
    Counter("liqbot_sink_rows", "rows", ["table"], registry=registry).labels("trades").inc(5)
    exporter_port = free_port()
    exporter, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    try:
        with server.running(tmp_path_factory.mktemp("prometheus"), {"sink": [f"127.0.0.1:{exporter_port}"]}, []) \
                as prometheus:
            two_samples = "count_over_time(liqbot_sink_rows_total[10s]) >= 2"  # enough for every rate() below
            server.wait_until(lambda: bool(server.query(prometheus, two_samples)), 30, "two scrapes of the registry")
            yield prometheus.url
    finally:
        exporter.shutdown()
        thread.join(5)


def test_queries_without_data_names_the_quiet_panels(prometheus_url: str, tmp_path: Path) -> None:
    dashboard = copy.deepcopy(_all()["pipeline.json"])
    served = {"Scrape targets up", "Processes and versions", "Sink rows written"}
    dashboard["templating"]["list"].append(
        {"name": "table", "type": "query", "query": {"query": "label_values(liqbot_sink_rows_total, table)"}})
    (tmp_path / "pipeline.json").write_text(json.dumps(dashboard))
    quiet = queries_without_data(prometheus_url, values={"__rate_interval": "10s"}, directory=tmp_path)
    every = {q.panel for q in queries(dashboard)}
    assert {q.panel for q in quiet} == every - served - {"$table"}
    assert served <= every


def test_queries_without_data_raises_on_a_query_prometheus_refuses(prometheus_url: str, tmp_path: Path) -> None:
    dashboard = copy.deepcopy(_all()["pipeline.json"])
    dashboard["panels"][0]["targets"][0]["expr"] = "sum(rate(liqbot_sink_rows_total[1m])"
    (tmp_path / "pipeline.json").write_text(json.dumps(dashboard))
    with pytest.raises(LiqbotError, match="Prometheus refused"):
        queries_without_data(prometheus_url, directory=tmp_path)
