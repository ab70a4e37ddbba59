"""docs/metrics.md as data, and a process's `/metrics` scrape checked against it: the doc cannot drift."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "metrics.md"
TYPES = {"counter", "gauge", "histogram"}
WRITTEN_BY_PROMETHEUS = {"up"}  # listed for the rules' sake; Prometheus writes it per target, no process serves it
Families = dict[str, list[Sample]]  # family name (a counter's without `_total`) to its samples


def documented() -> dict[str, dict[str, str]]:
    """Per section (`Every process`, `Ingest`, `Agents worker`, `Sink`, ...): each metric listed and its type
    (counter, gauge or histogram; "" for prometheus-client's own). A cell may list several names."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].split(" (")[0].strip(), {})
        elif current is not None and line.startswith("| `"):
            name_cell, type_cell = (cell.strip() for cell in line.strip("|").split("|")[:2])
            kind = type_cell.split(" ")[0]
            for name in re.findall(r"`([^`]+)`", name_cell):
                current[name] = kind if kind in TYPES else ""
    return sections


def for_process(section: str) -> dict[str, str]:
    """What the doc lists for one process: its section and every process's rows."""
    doc = documented()
    return {**doc["Every process"], **doc[section]}


def scrape(port: int) -> tuple[Families, dict[str, str]]:
    """The samples of every family served on 127.0.0.1:`port`, and each family's type."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    # prometheus-client writes a counter's and a histogram's start time as `<name>_created`, which the text
    # format's parser reads as a family of its own
    families = [f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")]
    return {f.name: f.samples for f in families}, {f.name: f.type for f in families}


def scrape_until(port: int, ready: Callable[[Families], bool], timeout_s: float = 120.0) -> Families:
    """Scrape until `ready` holds (the process may still be starting or catching up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            families, _ = scrape(port)
            if ready(families):
                return families
        except OSError:
            pass  # not serving yet
        assert time.monotonic() < deadline, f"metrics on port {port} not ready in {timeout_s} s"
        time.sleep(0.5)


def value(families: Families, sample: str, **labels: str) -> float:
    """The one sample named `sample` with exactly these labels (0 when the family has none such)."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
    found = [s.value for s in families.get(family, []) if s.name == sample and s.labels == labels]
    assert len(found) <= 1, f"{sample}{labels}: {len(found)} samples"
    return found[0] if found else 0.0


def by_label(families: Families, sample: str, label: str) -> dict[str, float]:
    """Every sample named `sample`, by the value of one label (the others summed over)."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    out: dict[str, float] = {}
    for s in families.get(family, []):
        if s.name == sample:
            out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out


def drift(port: int, section: str) -> list[str]:
    """How the process on `port` differs from docs/metrics.md's `section`: a listed metric it does not serve or
    serves with another type, or a liqbot metric it feeds (a non-zero sample) that is not listed for it."""
    families, types = scrape(port)
    listed = for_process(section)
    problems = []
    for name, kind in listed.items():
        if name in WRITTEN_BY_PROMETHEUS:
            continue
        if name.endswith("*"):
            if not any(f.startswith(name[:-1]) for f in families):
                problems.append(f"{name}: not served")
            continue
        family = name.removesuffix("_total") if kind == "counter" else name
        if family not in families:
            problems.append(f"{name}: not served")
        elif kind and types[family] != kind:
            problems.append(f"{name}: served as a {types[family]}, listed as a {kind}")
    families_listed = {n.removesuffix("_total") if k == "counter" else n for n, k in listed.items()}
    # every process declares the metrics of the modules it imports; a label-less counter of another process then
    # shows a 0 sample: only a value means that this process feeds it
    problems += [f"{name}: fed, not listed for {section}" for name, samples in families.items()
                 if name.startswith("liqbot_") and any(s.value for s in samples) and name not in families_listed]
    return problems
