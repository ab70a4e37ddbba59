"""`liqbot bench inference`: single-row scoring latency of the registry's model on real feature vectors.

One call = one feature vector and a side to both outputs for every arm (`Scorer.score`: spec check, NaN screen,
input rows, onnxruntime on bound buffers, output check): the `p50_us` / `p99_us` figures. Also measured in the same
run: `Scorer.predict` (the same, plus building the `Prediction` record), and the input rows with the model call
alone, three ways: on the bound buffers, `session.run` on a reused array, and naive (a fresh input array and a
plain `session.run` every call).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import report
from decision.arms import ArmGrid
from decision.feature_spec import FeatureSpec
from decision.scoring import ArmInputs, Scorer
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE
from schemas.records import FeatureVector, Side
from training.dataset import SIDES, decision_points, market_records
from training.onnx_model import INPUT, OUTPUTS, OnnxModel
from training.registry import ModelRegistry

Call = Callable[[FeatureVector, Side], object]


def real_vectors() -> list[tuple[FeatureVector, Side]]:
    """The feature vectors at the decision points of the real Binance capture, each with both sides."""
    found = decision_points(market_records(BINANCE_CAPTURE, "binance-usdm"), FeatureSpec())
    return [(p.vector, side) for p in found.points for side in SIDES]


def _calls(scorer: Scorer, model: OnnxModel) -> dict[str, Call]:
    """Each way of scoring one vector, from the whole `Scorer.predict` down to the bare session call."""
    rows, session = ArmInputs(ArmGrid(), FeatureSpec()), model.session
    arm_columns = rows.buffer[:, -3:-1].tolist()

    def bound(vector: FeatureVector, side: Side) -> object:
        return model.run(rows.fill(vector.values, side))

    def reused(vector: FeatureVector, side: Side) -> object:
        return session.run(list(OUTPUTS), {INPUT: rows.fill(vector.values, side)})

    def naive(vector: FeatureVector, side: Side) -> object:
        sign = 1.0 if side == "BUY" else -1.0
        inputs = np.array([[*vector.values, *arm, sign] for arm in arm_columns], dtype=np.float32)
        return session.run(None, {INPUT: inputs})

    return {"score": scorer.score, "predict": scorer.predict, "bound": bound, "reused": reused, "naive": naive}


def _measure(calls: dict[str, Call], workload: list[tuple[FeatureVector, Side]], n: int,
             rounds: int) -> dict[str, list[int]]:
    """Interleaved rounds, so that a noisy neighbour slows every method alike; the first pass warms up."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    clock = time.perf_counter_ns
    for round_ in range(rounds + 1):
        for name, call in calls.items():
            for i in range(n // rounds):
                vector, side = workload[i % len(workload)]
                start = clock()
                call(vector, side)
                elapsed = clock() - start
                if round_:
                    samples[name].append(elapsed)
    return {name: sorted(s) for name, s in samples.items()}


def _us(sorted_ns: list[int], q: float) -> float:
    return round(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e3, 2)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench inference")
    parser.add_argument("--calls", type=int, default=50_000, help="timed calls per method")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the calls are split into")
    parser.add_argument("--models", help="model registry directory (default: training/models)")
    args = parser.parse_args(argv)

    registry = ModelRegistry(Path(args.models)) if args.models else ModelRegistry()
    model = registry.load()
    meta = registry.meta(model.card.version)
    scorer = Scorer(model)
    workload = real_vectors()
    print(f"bench inference: model {model.card.version} ({meta['lightgbm']['trees']} trees), "
          f"{len(workload)} real vectors x {len(ArmGrid().arms())} arms, {args.calls} calls per method")
    samples = _measure(_calls(scorer, model), workload, args.calls, args.rounds)
    if scorer.counts["scored"] != 2 * (args.calls // args.rounds) * (args.rounds + 1):
        raise RuntimeError(f"the scorer skipped real vectors: {dict(scorer.counts)}")
    figures: dict[str, object] = {f"{name}_{q}_us": _us(samples[name], p) for name in samples
                                  for q, p in (("p50", 0.50), ("p99", 0.99))}
    figures = {"p50_us": figures.pop("score_p50_us"), "p99_us": figures.pop("score_p99_us"), **figures,
               "p50_over_naive": round(_us(samples["score"], 0.50) / _us(samples["naive"], 0.50), 3),
               "calls": len(samples["score"]), "arms": len(ArmGrid().arms()), "model_version": model.card.version,
               "trees": meta["lightgbm"]["trees"]}
    def both(name: str) -> str:
        return f"{figures[f'{name}_p50_us']} / {figures[f'{name}_p99_us']} us"

    report("inference", [
        ("Scorer.score (vector -> every arm's outputs), p50 / p99", f"{figures['p50_us']} / {figures['p99_us']} us"),
        ("Scorer.predict (the same + the Prediction record)", both("predict")),
        ("rows + bound session call (no screen, no checks)", both("bound")),
        ("rows + session.run on a reused array", both("reused")),
        ("naive: fresh array + session.run", both("naive")),
        ("score / naive, p50", f"{figures['p50_over_naive']}"),
    ], figures)
    return 0
