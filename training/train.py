"""`liqbot train`: real captures -> dataset -> two LightGBM models -> one ONNX file -> the model registry.

Deterministic end to end (fixed seeds, one thread, no wall-clock time in the metadata): the same captures and
library versions give the same bytes, hence the same version, which is what lets the fitted model be committed.
`liqbot train --scenario wick` runs the same path on the SYNTHETIC scenario (training/scenario.py) into its own
registry, for exercising the order path; its model card says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from typing import Any

from decision.arms import ArmGrid
from decision.feature_spec import FeatureSpec
from decision.orders import ExitRule, Fees
from decision.scoring import label_fingerprint
from training.dataset import DEFAULT_CAPTURES, Dataset, Source, build_dataset
from training.export import to_onnx
from training.fit import PARAMS, ROUNDS, Fitted, Split, fit, time_split
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.scenario import ScenarioSource, WickScenario

__all__ = ["REAL", "ModelAbout", "model_meta", "scenario_about", "train", "train_scenario"]

PURPOSE = ("Interim placeholder until the training issue: two small LightGBM models fitted on minutes of real "
           "capture, at decision points that are not liquidation bursts. It exists so that scoring runs on real, "
           "reproducible weights; its held-out metrics below are all that is known of it, and they back no claim "
           "about trading performance.")
DECISION_POINTS = ("the first trade of every 1-second event-time bucket per (venue, symbol), features by "
                   "decision.features just after it; a buy and a sell entry each, for every arm")
LABELS = ("decision.orders.WickOrder at limit_price(mid, side, delta) placed at the decision, run over the symbol's "
          "later trades and funding times; fill = the order reached OPEN; net_return = WickOrder.net_return() of a "
          "filled order (fraction of notional, after fees and funding); a row exists only when the tape reaches "
          "T + H past the decision")
SCENARIO_PURPOSE = ("synthetic scenario model, fitted on training/scenario.py output (seed {seed}), for exercising "
                    "the order path in tests and benchmarks; not a strategy claim")
SCENARIO_DECISION_POINTS = ("every liquidation of the SYNTHETIC scenario, features by decision.features just after "
                            "it; the entry side the liquidation calls for (buy after longs were liquidated), for "
                            "every arm")


@dataclass(frozen=True, kw_only=True)
class ModelAbout:
    """What a model card says the model is; `extra` fields follow `created_by`."""

    purpose: str = PURPOSE
    created_by: str = "liqbot train"
    decision_points: str = DECISION_POINTS
    extra: Mapping[str, Any] = field(default_factory=dict)


REAL = ModelAbout()


def scenario_about(scenario: WickScenario) -> ModelAbout:
    """The card of a model fitted on the synthetic scenario: `synthetic: true` and the scenario's parameters."""
    return ModelAbout(purpose=SCENARIO_PURPOSE.format(seed=scenario.seed), created_by="liqbot train --scenario wick",
                      decision_points=SCENARIO_DECISION_POINTS,
                      extra={"synthetic": True, "scenario": {"generator": "training/scenario.py", **asdict(scenario)}})


def train_scenario(registry: ModelRegistry | None = None, scenario: WickScenario | None = None,
                   say: Callable[[str], None] = print) -> tuple[str, dict[str, Any]]:
    """`train` on the SYNTHETIC wick scenario, into the scenario registry (training/scenario_models) by default."""
    scenario = scenario or WickScenario()
    return train(registry or ModelRegistry(SCENARIO_REGISTRY), [ScenarioSource(scenario)], say,
                 scenario_about(scenario))


def train(registry: ModelRegistry, captures: Iterable[Source] = DEFAULT_CAPTURES,
          say: Callable[[str], None] = print, about: ModelAbout = REAL) -> tuple[str, dict[str, Any]]:
    """Build, fit, export and publish; returns the version and its metadata."""
    say("reading market records, computing features and labels ...")
    data = build_dataset(captures)
    for c in data.captures:
        say(f"  {c.file}: {c.records} records, {c.decision_points} decision points (skipped {c.skipped or 'none'}), "
            f"{c.rows} rows ({c.filled} filled), {c.past_tape_end} not settled before the tape ends")
    split = time_split(data)
    say(f"fitting on {int(split.train.sum())} rows, holding out {int(split.test.sum())} (time split) ...")
    fitted = fit(data, split)
    meta = model_meta(data, split, fitted, about)
    version = registry.publish(to_onnx(fitted.net_return, fitted.fill, data.inputs.shape[1]), meta)
    say(f"published {version} in {registry.root} (CURRENT)")
    return version, {"version": version, **meta}


def model_meta(data: Dataset, split: Split, fitted: Fitted, about: ModelAbout = REAL) -> dict[str, Any]:
    spec, grid, exit_rule, fees = FeatureSpec(), ArmGrid(), ExitRule(), Fees()
    return {
        "purpose": about.purpose, "created_by": about.created_by, **about.extra,
        "feature_spec": spec.fingerprint(), "arm_grid": grid.fingerprint(),
        "labels": label_fingerprint(exit_rule, fees),
        "inputs": list(data.columns),
        "outputs": {"net_return": "E[WickOrder.net_return() | filled], fraction of notional",
                    "fill_probability": "column 1: P(the order fills before T)"},
        "arms": [asdict(a) for a in grid.arms()], "exit_rule": asdict(exit_rule), "fees": asdict(fees),
        "decision_points": about.decision_points, "label_definition": LABELS,
        "data": [asdict(c) for c in data.captures],
        "split": {"rule": "test: decided at or after split_at_ns; train: label settled by split_at_ns (purged)",
                  "split_at_ns": split.at_ns},
        "lightgbm": {"params": PARAMS, "rounds": ROUNDS,
                     "trees": {"fill": fitted.fill.num_trees(), "net_return": fitted.net_return.num_trees()}},
        "metrics": fitted.metrics,
        "libraries": {name: package_version(name) for name in ("lightgbm", "onnxmltools", "onnx", "numpy")},
    }
