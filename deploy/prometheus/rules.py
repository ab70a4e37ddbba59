"""The project's rule files: loading them, checking them against the contracts, and copies with short `for:`."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# one reader of the metrics contract for the rules and the dashboards alike
from deploy.grafana.promql import Contract, Metric, expression_problems
from liqbot.data import REPO

__all__ = ["RULES_DIR", "RUNBOOK", "SEVERITIES", "TESTS_DIR", "Coverage", "Rule", "anchors", "coverage", "load",
           "problems", "promtool", "rule_files", "template_queries", "test_files", "with_for"]

HERE = Path(__file__).resolve().parent
RULES_DIR = HERE / "rules"
TESTS_DIR = HERE / "tests"
RUNBOOK = REPO / "docs" / "runbook.md"
SEVERITIES = frozenset({"page", "ticket", "info"})
_RUNBOOK_URL = re.compile(r"^docs/runbook\.md#([a-z0-9_-]+)$")
# `query "..."` or `query (printf "..." ...)` in an annotation template: PromQL run when the alert is rendered
_TEMPLATE_QUERY = re.compile(r'\bquery\s+\(?\s*(?:printf\s+)?("(?:[^"\\]|\\.)*"|`[^`]*`)')


@dataclass(frozen=True)
class Rule:
    """One alerting or recording rule as written in its file."""

    name: str
    kind: Literal["alert", "record"]
    expr: str
    file: Path
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Coverage:
    """Which alerts the promtool tests expect to fire, and which they check stay quiet, at some time."""

    firing: frozenset[str]
    quiet: frozenset[str]


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def load(paths: Iterable[Path]) -> list[Rule]:
    """Every rule of every group in `paths`, in file order."""
    found = []
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for raw in group["rules"]:
                kind: Literal["alert", "record"] = "alert" if "alert" in raw else "record"
                found.append(Rule(name=raw[kind], kind=kind, expr=raw["expr"], file=path,
                                  labels=raw.get("labels", {}), annotations=raw.get("annotations", {})))
    return found


def anchors(markdown: Path = RUNBOOK) -> frozenset[str]:
    """GitHub's anchors of the document's headings: lower case, punctuation dropped, spaces as hyphens."""
    slugs = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return frozenset(slugs)


def coverage(paths: Iterable[Path]) -> Coverage:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in paths:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    return Coverage(frozenset(firing), frozenset(quiet))


def problems(rules: Sequence[Rule], contract: Contract, runbook_anchors: frozenset[str],
             tested: Coverage) -> list[str]:
    """Everything wrong with `rules` against the metrics contract, the runbook and the tests; empty when fine."""
    recorded = {rule.name: Metric(rule.name, "gauge", None) for rule in rules if rule.kind == "record"}
    known = Contract({**contract.metrics, **recorded}, contract.prefixes)
    found: list[str] = []
    for rule in rules:
        where = f"{rule.file.name}: {rule.name}"
        queries = [rule.expr, *(q for text in rule.annotations.values() for q in template_queries(text))]
        found.extend(f"{where}: {problem}" for query in queries for problem in expression_problems(query, known))
        if rule.kind == "alert":
            found.extend(f"{where} {problem}" for problem in _alert_problems(rule, runbook_anchors, tested))
    return found


def template_queries(template: str) -> list[str]:
    """The PromQL of each `query` call in an annotation template, its printf verbs filled with a placeholder."""
    found = []
    for match in _TEMPLATE_QUERY.finditer(template):
        literal = match.group(1)
        body = literal[1:-1]
        if literal.startswith('"'):
            body = body.replace('\\"', '"').replace("\\\\", "\\")  # Go's escapes inside "..."
        found.append(body.replace("%q", '"x"').replace("%s", "x").replace("%%", "%"))
    return found


def _alert_problems(rule: Rule, runbook_anchors: frozenset[str], tested: Coverage) -> list[str]:
    found = []
    if rule.labels.get("severity") not in SEVERITIES:
        found.append(f"has severity {rule.labels.get('severity')!r}, not one of {sorted(SEVERITIES)}")
    for key in ("summary", "description"):
        if not rule.annotations.get(key):
            found.append(f"has no {key} annotation")
    url = _RUNBOOK_URL.match(rule.annotations.get("runbook_url", ""))
    if url is None:
        found.append("has no runbook_url of the form docs/runbook.md#anchor")
    elif url.group(1) not in runbook_anchors:
        found.append(f"links #{url.group(1)}, which docs/runbook.md has no section for")
    elif url.group(1) != rule.name.lower():
        found.append(f"links #{url.group(1)}, not its own section #{rule.name.lower()}")
    if rule.name not in tested.firing:
        found.append("has no promtool test where it fires")
    if rule.name not in tested.quiet:
        found.append("has no promtool test where it stays quiet")
    return found


def with_for(paths: Iterable[Path], out_dir: Path, for_: str) -> list[Path]:
    """Copies of the rule files in `out_dir` where every alert that waits uses `for_` instead (for live tests)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        content: dict[str, Any] = yaml.safe_load(path.read_text())
        for group in content["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = for_
        target = out_dir / path.name
        target.write_text(yaml.safe_dump(content, sort_keys=False))
        written.append(target)
    return written


def promtool(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; the caller judges the return code and output."""
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, check=False,
                          timeout=120)
