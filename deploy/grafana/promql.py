"""PromQL against the metrics contract (docs/metrics.md): which metrics and labels an expression uses.

No PromQL parser exists for Python; promtool checks the syntax, and this reads what a syntactically valid
expression names, with the strings, ranges and grouping clauses taken out first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from liqbot.data import REPO

__all__ = ["CONTRACT_PATH", "Contract", "Metric", "expression_problems", "metric_names", "selector_labels"]

CONTRACT_PATH = REPO / "docs" / "metrics.md"

# labels Prometheus adds to every scraped series, and the bucket bound of a histogram's _bucket series
TARGET_LABELS = frozenset({"job", "instance"})
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                       "offset", "inf", "nan"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?")
_COUNTER_FUNCTIONS = re.compile(r"\b(rate|irate|increase)\s*\(\s*([a-zA-Z_:][\w:]*)")
_QUANTILE = re.compile(r"histogram_quantile\s*\(\s*[\d.]+\s*,\s*(\w+)\s+by\s*\(([^)]*)\)\s*\(\s*(\w+)\s*\(\s*(\w+)")


@dataclass(frozen=True)
class Metric:
    """One row of the contract; `labels` is None where the table does not name them ("as above")."""

    name: str
    type: str  # counter, gauge, histogram, or the client's own
    labels: frozenset[str] | None


@dataclass(frozen=True)
class Contract:
    """Every metric the processes serve, from the tables of docs/metrics.md."""

    metrics: dict[str, Metric]
    prefixes: tuple[str, ...]  # `process_*`: the client library's families, whatever their names

    @classmethod
    def load(cls, path: Path = CONTRACT_PATH) -> Contract:
        metrics: dict[str, Metric] = {}
        prefixes: list[str] = []
        for row in _table_rows(path.read_text()):
            names, kind = re.findall(r"`([^`]+)`", row[0]), "library" if row[1].startswith("(") else row[1].split()[0]
            unnamed = "as above" in row[2] or kind == "library"  # the client's own families carry their own labels
            labels = None if unnamed else frozenset(re.findall(r"`(\w+)`", row[2]))
            for name in names:
                if name.endswith("*"):
                    prefixes.append(name[:-1])
                elif labels is not None or name not in metrics:  # "as above": the labels of another row, if any
                    metrics[name] = Metric(name, kind, labels)
        return cls(metrics, tuple(prefixes))

    def resolve(self, series: str) -> Metric | None:
        """The metric a series name belongs to (a histogram's `_bucket` is its histogram's), or None."""
        if series in self.metrics:
            return self.metrics[series]
        for suffix in _HISTOGRAM_SERIES:
            base = self.metrics.get(series.removesuffix(suffix))
            if series.endswith(suffix) and base is not None and base.type == "histogram":
                return base
        if series.startswith(self.prefixes):
            return Metric(series, "library", None)
        return None

    def labels_of(self, series: str) -> frozenset[str] | None:
        """The labels a series may carry, None when the contract does not say."""
        metric = self.resolve(series)
        if metric is None or metric.labels is None:
            return None
        bucket = {"le"} if series.endswith("_bucket") else set()
        return metric.labels | TARGET_LABELS | bucket


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every table body row (header and separator rows left out)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0].startswith("`"):
            rows.append(cells)
    return rows


def _masked(expr: str) -> str:
    """The expression with every string literal emptied, so braces or names inside them are not read."""
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (functions, keywords and label names left out)."""
    text = _RANGE.sub("", _GROUPING.sub("", _SELECTOR.sub(lambda m: m.group(1) or "", _masked(expr))))
    return {m.group(1) for m in _IDENTIFIER.finditer(text) if not m.group(2) and m.group(1) not in _KEYWORDS}


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """Each `name{...}` selector with the label names its matchers use."""
    return [(m.group(1), set(_MATCHER_LABEL.findall(m.group(2))))
            for m in _SELECTOR.finditer(_masked(expr)) if m.group(1)]


def expression_problems(expr: str, contract: Contract) -> list[str]:
    """What is wrong with an expression against the contract: unknown metrics or labels, misused types."""
    names = metric_names(expr)
    problems = [f"{n}: not in docs/metrics.md" for n in sorted(names) if contract.resolve(n) is None]
    problems += _label_problems(expr, names, contract)
    problems += _type_problems(expr, contract)
    return problems


def _label_problems(expr: str, names: set[str], contract: Contract) -> list[str]:
    problems = []
    for name, used in selector_labels(expr):
        allowed = contract.labels_of(name)
        problems += [f"{name}: no label {label!r}" for label in sorted(used - (allowed or used))]
    known = [contract.labels_of(n) for n in names]
    if known and all(labels is not None for labels in known):
        union = frozenset().union(*(labels for labels in known if labels is not None))
        for clause in _GROUPING.finditer(_masked(expr)):
            grouped = {label.strip() for label in clause.group(2).split(",") if label.strip()}
            problems += [f"{clause.group(1)} ({label}): no metric here has that label"
                         for label in sorted(grouped - union)]
    return problems


def _type_problems(expr: str, contract: Contract) -> list[str]:
    problems = []
    for func, name in _COUNTER_FUNCTIONS.findall(_masked(expr)):
        metric = contract.resolve(name)
        if metric is not None and metric.type not in ("counter", "histogram", "library"):
            problems.append(f"{func}({name}): {metric.type}, not a counter (use deriv or delta)")
    if "histogram_quantile" in expr:
        quantiles = _QUANTILE.findall(expr)
        if len(quantiles) != expr.count("histogram_quantile"):
            problems.append("histogram_quantile: write it as "
                            "histogram_quantile(q, sum by (le, ...) (rate(X_bucket[...])))")
        for _, by, _, series in quantiles:
            if "le" not in {label.strip() for label in by.split(",")}:
                problems.append(f"histogram_quantile over {series}: `le` missing from its by clause")
            if not series.endswith("_bucket"):
                problems.append(f"histogram_quantile over {series}: not a _bucket series")
    return problems
