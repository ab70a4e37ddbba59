"""Which features exist, in which order, over which windows; its fingerprint ties models to it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class FeatureSpec:
    liquidation_windows_s: tuple[int, ...] = (1, 5, 30, 60, 300)
    acceleration_windows_s: tuple[int, ...] = (10, 60)  # rate in the recent half over the earlier half
    burst_window_s: int = 5  # the burst z-score compares this window's notional ...
    burst_baseline_windows: int = 60  # ... with the notional of this many such windows before it
    burst_sigma_floor: float = 1.0  # quote units: a quiet baseline must not make any liquidation infinite
    largest_window_s: int = 60  # largest liquidation in this window ...
    median_window_s: int = 300  # ... over the median liquidation in this one
    trade_windows_s: tuple[int, ...] = (5, 30, 60, 300)
    depth_levels: tuple[int, ...] = (1, 5, 20)
    open_interest_windows_s: tuple[int, ...] = (60, 300)
    lateness_s: float = 1.0  # a trade or liquidation older than its symbol's newest by more is skipped
    version: int = 1

    def names(self) -> tuple[str, ...]:
        """Feature names in vector order."""
        out: list[str] = []
        for w in self.liquidation_windows_s:
            out += [f"liq_notional_{w}s", f"liq_count_{w}s", f"liq_imbalance_{w}s"]
        out += [f"liq_burst_z_{self.burst_window_s}s"]
        out += [f"liq_acceleration_{w}s" for w in self.acceleration_windows_s]
        out += ["liq_seconds_since_last", f"liq_largest_{self.largest_window_s}s_over_median_{self.median_window_s}s"]
        for w in self.trade_windows_s:
            out += [f"trade_imbalance_{w}s", f"trade_count_{w}s", f"trade_vwap_dev_bps_{w}s", f"trade_rv_{w}s"]
        out += ["book_spread_bps", "book_microprice_dev_bps"]
        out += [f"book_depth_imbalance_{n}" for n in self.depth_levels]
        out += [f"oi_change_{w}s" for w in self.open_interest_windows_s]
        out += ["funding_rate", "funding_seconds_to_next"]
        out += ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]
        return tuple(out)

    def liquidation_sum_windows_s(self) -> tuple[float, ...]:
        """Every liquidation window kept: the published ones, the burst window and the halves of accelerations."""
        halves = (w / 2 for w in self.acceleration_windows_s)
        return tuple(sorted({*self.liquidation_windows_s, *self.acceleration_windows_s, *halves,
                             self.burst_window_s}))

    def fingerprint(self) -> str:
        """Names, windows and version: a model trained on another spec must be refused."""
        text = json.dumps({"spec": asdict(self), "names": self.names()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
