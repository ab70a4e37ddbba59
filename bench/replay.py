"""`liqbot bench replay`: history replay through the full steps on one core, against hftbacktest on the same capture.

Ours (`streams/history/backtest.py`): the real Binance USD-M capture and the SYNTHETIC wick scenario
(training/scenario.py, whose model in training/scenario_models reaches the order path) landed in a fresh chDB store
as the sink writes them (decoded by the sink's own decoder, Kafka coordinates made as a topic gives them; no Kafka),
then (1) read back from ClickHouse into memory (`read_history`), timed apart: `load_rows_per_s`; (2) replayed from
those records in memory (`replay_history`): features for every event, scoring at the decision points, decide, the
paper venue: `replay_s`, `events_per_s`; (3) the Binance replay once more under cProfile, untimed, for where the
time goes.

hftbacktest (PyPI), same run, same capture file: converted by its own `binancefutures.convert` (timed apart), then a
compiled `wait_next_feed` loop that reads the depth on every feed and places and cancels a post-only order at our
decision points on that capture (`bench/hftbacktest_side.py`, in an environment of its own: hftbacktest pins
numpy < 2.3, the project needs >= 2.4).
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench import report
from decision.arms import ArmGrid
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, REPO
from liqbot.errors import LiqbotError
from schemas.records import Instrument
from streams.capture_replay import capture_records
from streams.history.backtest import BacktestConfig, History, Replay, read_history, replay_history
from streams.history.load import land
from streams.history.reader import HistoryRange
from streams.history.store import StoreSettings, apply_migrations, connect
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.scenario import WickScenario, generate
from training.serving import ServedModel

HFTBACKTEST_PYTHON = REPO / ".venv" / "hftbacktest" / "bin" / "python"
_REQUIREMENTS = Path(__file__).resolve().with_name("hftbacktest-requirements.txt")
_SIDE = Path(__file__).resolve().with_name("hftbacktest_side.py")
_TARGET_EVENTS_PER_S = 1_000_000
_TARGET_OVER_HFTBACKTEST = 1.0
_ALL_TIME = (1_704_067_200 * 10**9, 1_798_761_600 * 10**9)  # 2024-01-01 to 2027-01-01: around every real capture


@dataclass(frozen=True)
class Run:
    """One data set through our side: the read from ClickHouse, then the replay from memory."""

    name: str
    history: History
    load_s: float
    result: Replay
    replay_s: float

    @property
    def market_records(self) -> int:
        """Records fed that are market events (instruments are state, read from before the range)."""
        return sum(n for table, n in self.result.rows.items() if table != "instruments")

    @property
    def market_seconds(self) -> float:
        times = [ts for _, records in self.history.sources for ts, _, r in records if not isinstance(r, Instrument)]
        return (max(times) - min(times)) / 1e9 if times else 0.0

    @property
    def decision_points(self) -> list[tuple[int, int]]:
        """(event time ns, +1 buy / -1 sell) of each feature vector made at a decision point, in time order."""
        return sorted((v.ts_event_ns, 1 if v.side == "BUY" else -1) for v in self.result.outputs.vectors
                      if v.side is not None)


def _measure(name: str, client: Client, config: BacktestConfig, served: ServedModel) -> Run:
    start = time.perf_counter()
    history = read_history(client, config)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    result = replay_history(history, config, served)
    return Run(name, history, load_s, result, time.perf_counter() - start)


def profile(history: History, config: BacktestConfig, served: ServedModel, top: int) -> list[dict[str, Any]]:
    """cProfile of one replay from memory: the `top` functions by cumulative time (seconds under the profiler)."""
    profiler = cProfile.Profile()
    profiler.enable()
    replay_history(history, config, served)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows: list[dict[str, Any]] = []
    for (path, line, function), (_, calls, own_s, cum_s, _) in sorted(
            stats.stats.items(), key=lambda kv: kv[1][3], reverse=True):  # type: ignore[attr-defined]
        where = f"{Path(path).name}:{line}" if line else path
        rows.append({"function": f"{function} ({where})", "calls": calls, "cumulative_s": round(cum_s, 3),
                     "own_s": round(own_s, 3)})
        if len(rows) == top:
            break
    return rows


def hftbacktest_python(path: Path) -> Path:
    """The interpreter of hftbacktest's own environment, made (pip, hftbacktest-requirements.txt) if missing."""
    if path.exists():
        return path
    if path != HFTBACKTEST_PYTHON:
        raise LiqbotError(f"--hftbacktest-python {path}: no such interpreter")
    venv = path.parent.parent
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    print(f"bench replay: setting up {venv} (pip install -r {_REQUIREMENTS.name}) ...", file=sys.stderr)
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(path), "-m", "pip", "install", "-q", "-r", str(_REQUIREMENTS)], check=True)
    return path


def run_hftbacktest(python: Path, capture: Path, decisions: Sequence[tuple[int, int]], *, valid_ms: int,
                    workdir: Path) -> dict[str, Any]:
    """hftbacktest on `capture` with our decision points, in its own interpreter: its JSON figures."""
    points = workdir / "decisions.json"
    points.write_text(json.dumps(list(decisions)))
    done = subprocess.run([str(python), str(_SIDE), str(capture), "--decisions", str(points), "--valid-ms",
                           str(valid_ms)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LiqbotError(f"hftbacktest side failed ({done.returncode}):\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # the converter prints its steps before
    if figures["error"]:
        raise LiqbotError(f"hftbacktest's wait_next_feed returned {figures['error']}")
    return figures


def _head(capture: Path, lines: int, workdir: Path) -> Path:
    """The first `lines` lines of a gzip capture, as a capture of their own (both sides read the same file)."""
    out = workdir / f"head-{lines}-{capture.name}"
    with gzip.open(capture, "rb") as src, gzip.open(out, "wb") as dst:
        for n, line in enumerate(src):
            if n == lines:
                break
            dst.write(line)
    return out


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench replay")
    parser.add_argument("--lines", type=int, help="only the first N lines of the Binance capture (default: all)")
    parser.add_argument("--scenario-seconds", type=int, default=WickScenario().duration_s,
                        help="SYNTHETIC wick scenario length (default: %(default)s)")
    parser.add_argument("--scenario-bursts", type=int, default=WickScenario().bursts)
    parser.add_argument("--profile-top", type=int, default=15, help="functions the profile summary lists")
    parser.add_argument("--hftbacktest-python", type=Path, default=HFTBACKTEST_PYTHON,
                        help="the interpreter of an environment with hftbacktest (default: made at %(default)s)")
    args = parser.parse_args(argv)

    python = hftbacktest_python(args.hftbacktest_python)
    scenario = WickScenario(duration_s=args.scenario_seconds, bursts=args.scenario_bursts)
    partitions = settings.kafka.partitions
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        capture = _head(BINANCE_CAPTURE, args.lines, work) if args.lines else BINANCE_CAPTURE
        real = capture_records(capture, "binance-usdm")
        symbols = tuple(sorted({str(r.to_avro()["symbol"]) for r in real}))
        client = connect(StoreSettings(path=work / "clickhouse"))
        try:
            apply_migrations(client)
            land(client, "real.", real, partitions)
            land(client, "wick.", generate(scenario).records, partitions)
            real_config = BacktestConfig(span=HistoryRange(namespace="real.", from_ns=_ALL_TIME[0],
                                                           to_ns=_ALL_TIME[1], symbols=symbols))
            wick_config = BacktestConfig(span=HistoryRange(namespace="wick.", from_ns=scenario.start_ns,
                                                           to_ns=scenario.end_ns + 10**9, symbols=scenario.symbols))
            real_model, wick_model = ServedModel(ModelRegistry()), ServedModel(ModelRegistry(SCENARIO_REGISTRY))
            ours = _measure("binance", client, real_config, real_model)
            wick = _measure("scenario", client, wick_config, wick_model)
        finally:
            client.close()  # chDB opens one directory per process at a time
        top = profile(ours.history, real_config, real_model, args.profile_top)
        # each order rests for the grid's shortest T, then is cancelled (ours: the arm's T, or never placed)
        hbt = run_hftbacktest(python, capture, ours.decision_points, valid_ms=min(ArmGrid().valid_for_ms),
                              workdir=work)
    load_after = os.getloadavg()[0]

    events_per_s = _rate(ours.market_records, ours.replay_s)
    over = hbt["run_s"] / ours.replay_s
    out, wout = ours.result.outputs, wick.result.outputs
    figures: dict[str, Any] = {
        "events_per_s": round(events_per_s),
        "market_seconds_per_s": round(_rate(ours.market_seconds, ours.replay_s), 2),
        "hftbacktest_s": round(hbt["run_s"], 6), "replay_s": round(ours.replay_s, 4),
        "speed_over_hftbacktest": round(over, 5), "load_rows_per_s": round(_rate(ours.history.records, ours.load_s)),
        "decision_points": len(ours.decision_points), "orders": len(out.intents),
        "records": ours.result.records, "market_records": ours.market_records,
        "market_seconds": round(ours.market_seconds, 3), "load_s": round(ours.load_s, 3),
        "predictions": len(out.predictions), "fills": len(out.fills), "result_hash": ours.result.result_hash,
        "hftbacktest_events": hbt["events"], "hftbacktest_events_per_s": round(_rate(hbt["events"], hbt["run_s"])),
        "hftbacktest_feeds": hbt["feeds"], "hftbacktest_orders": hbt["orders"], "hftbacktest_cancels": hbt["cancels"],
        "hftbacktest_convert_s": round(hbt["convert_s"], 3), "hftbacktest_compile_s": round(hbt["compile_s"], 3),
        "hftbacktest_market_seconds": round(hbt["span_s"], 3),
        "scenario_synthetic": True, "scenario_records": wick.result.records,
        "scenario_market_records": wick.market_records, "scenario_replay_s": round(wick.replay_s, 3),
        "scenario_events_per_s": round(_rate(wick.market_records, wick.replay_s)),
        "scenario_market_seconds_per_s": round(_rate(wick.market_seconds, wick.replay_s), 2),
        "scenario_load_rows_per_s": round(_rate(wick.history.records, wick.load_s)),
        "scenario_decision_points": len(wick.decision_points), "scenario_predictions": len(wout.predictions),
        "scenario_orders": len(wout.intents), "scenario_order_events": len(wout.events),
        "scenario_fills": len(wout.fills), "scenario_net_pnl": round(wick.result.net_pnl, 2),
        "scenario_result_hash": wick.result.result_hash,
        "target_events_per_s": _TARGET_EVENTS_PER_S, "target_speed_over_hftbacktest": _TARGET_OVER_HFTBACKTEST,
        "events_per_s_met": events_per_s >= _TARGET_EVENTS_PER_S, "speed_met": over >= _TARGET_OVER_HFTBACKTEST,
        "profile_top": top, "partitions": partitions, "load_avg_1m": [round(load, 2), round(load_after, 2)],
    }
    figures["targets_met"] = figures["events_per_s_met"] and figures["speed_met"]
    rows = [
        (f"ours, Binance capture ({capture.name}): {ours.market_records:,} market records, "
         f"{ours.market_seconds:.1f} s of market, replayed from memory", f"{ours.replay_s:.3f} s"),
        ("  market records per second (events_per_s)", f"{events_per_s:,.0f}"),
        ("  market seconds per second", f"{figures['market_seconds_per_s']:,}"),
        ("  decision points / predictions / orders / fills",
         f"{figures['decision_points']} / {figures['predictions']} / {figures['orders']} / {figures['fills']}"),
        (f"  loading from ClickHouse into memory ({ours.history.records:,} rows, {ours.load_s:.2f} s)",
         f"{figures['load_rows_per_s']:,} rows/s"),
        (f"hftbacktest {hbt['events']:,} events ({hbt['feeds']:,} feeds), wait_next_feed + depth on every feed, "
         f"{hbt['orders']} post-only orders / {hbt['cancels']} cancels at our decision points",
         f"{hbt['run_s']:.4f} s ({figures['hftbacktest_events_per_s']:,} events/s)"),
        ("  its converter (binancefutures.convert) / numba compile, apart",
         f"{hbt['convert_s']:.2f} s / {hbt['compile_s']:.2f} s"),
        ("speed over hftbacktest (its wall time / ours, whole capture)", f"{over:.5f}"),
        (f"SYNTHETIC wick scenario: {wick.market_records:,} market records, {wick.market_seconds:.0f} s, "
         "replayed from memory", f"{wick.replay_s:.3f} s ({figures['scenario_events_per_s']:,} events/s)"),
        ("  decision points / predictions / orders / order events / fills",
         f"{figures['scenario_decision_points']} / {figures['scenario_predictions']} / {figures['scenario_orders']} / "
         f"{figures['scenario_order_events']} / {figures['scenario_fills']}"),
        ("  loading from ClickHouse into memory", f"{figures['scenario_load_rows_per_s']:,} rows/s"),
        (f"target events_per_s >= {_TARGET_EVENTS_PER_S:,}", "met" if figures["events_per_s_met"] else "NOT met"),
        (f"target speed_over_hftbacktest >= {_TARGET_OVER_HFTBACKTEST:g}",
         "met" if figures["speed_met"] else "NOT met"),
        ("profile of our Binance replay (cProfile, cumulative s / own s / calls):", ""),
        *((f"  {p['function']}"[:110], f"{p['cumulative_s']:.3f} / {p['own_s']:.3f} / {p['calls']:,}") for p in top),
        ("load average (1 min) before / after", f"{load:.2f} / {load_after:.2f}"),
    ]
    report("replay", rows, figures)
    return 0
