"""Order-entry and cancel latency of the paper venue: a constant, a distribution, or recorded ack latencies.

Every draw is a pure function of (seed, what, id): the id's sha256 is a uniform in (0, 1) and the model's quantile
function turns it into milliseconds. No global random state, so a replay, a restart from a snapshot and a second run
of the same manifest draw exactly the same latencies for the same client order ids and cancel ids.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["ConstantLatency", "LatencyModel", "LognormalLatency", "RecordedLatency", "UniformLatency", "draw_ns",
           "parse_latency", "parse_samples", "uniform_of"]

_NS_PER_MS = 1_000_000
_UNIT = NormalDist()
LATENCY_FORMS = "MS, constant:MS, uniform:LOW_MS:HIGH_MS or lognormal:MEDIAN_MS:SIGMA (e.g. 5, uniform:2:8, " \
                "lognormal:5:0.5)"


def _check_ms(value: float, what: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number of ms >= 0, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class ConstantLatency:
    """The same latency every time, ms (the default 0: the order is at the venue at its decision time)."""

    ms: float = 0.0

    def __post_init__(self) -> None:
        _check_ms(self.ms, "a constant latency")

    def quantile_ms(self, _u: float) -> float:
        return self.ms


@dataclass(frozen=True, kw_only=True)
class UniformLatency:
    """Uniform between `low_ms` and `high_ms`."""

    low_ms: float
    high_ms: float

    def __post_init__(self) -> None:
        _check_ms(self.low_ms, "uniform's LOW_MS")
        _check_ms(self.high_ms, "uniform's HIGH_MS")
        if self.high_ms < self.low_ms:
            raise ValueError(f"uniform latency: HIGH_MS {self.high_ms} is below LOW_MS {self.low_ms}")

    def quantile_ms(self, u: float) -> float:
        return self.low_ms + u * (self.high_ms - self.low_ms)


@dataclass(frozen=True, kw_only=True)
class LognormalLatency:
    """Lognormal with median `median_ms` and log-space standard deviation `sigma` (a long right tail, as acks have)."""

    median_ms: float
    sigma: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median_ms) and self.median_ms > 0):
            raise ValueError(f"lognormal latency: MEDIAN_MS must be a finite number > 0, not {self.median_ms!r}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"lognormal latency: SIGMA must be a finite number >= 0, not {self.sigma!r}")

    def quantile_ms(self, u: float) -> float:
        return self.median_ms * math.exp(self.sigma * _UNIT.inv_cdf(u))


@dataclass(frozen=True, kw_only=True)
class RecordedLatency:
    """Measured latencies, ms, drawn from their empirical distribution; `source` names where they came from."""

    samples_ms: tuple[float, ...]  # kept sorted: the order they were measured in does not matter, and the hash
    source: str = ""  # of a run's config then does not depend on it either

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError(f"recorded latencies{' in ' + self.source if self.source else ''}: no samples")
        for value in self.samples_ms:
            _check_ms(value, "a recorded latency")
        object.__setattr__(self, "samples_ms", tuple(sorted(self.samples_ms)))

    def quantile_ms(self, u: float) -> float:
        return self.samples_ms[min(int(u * len(self.samples_ms)), len(self.samples_ms) - 1)]


LatencyModel = ConstantLatency | UniformLatency | LognormalLatency | RecordedLatency


def uniform_of(seed: int, what: str, key: str) -> float:
    """A uniform in (0, 1) from sha256 of (seed, what, key): strictly inside, so every quantile function is finite."""
    digest = hashlib.sha256(f"{seed}:{what}:{key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def draw_ns(model: LatencyModel, seed: int, what: str, key: str) -> int:
    """The latency, ns, of `what` ("entry" or "cancel") for the order or cancel `key`."""
    if isinstance(model, ConstantLatency):  # no hashing on the default path
        return round(model.ms * _NS_PER_MS)
    return round(model.quantile_ms(uniform_of(seed, what, key)) * _NS_PER_MS)


def parse_latency(text: str) -> LatencyModel:
    """A latency as written on the command line; ValueError saying what to write instead."""
    kind, _, rest = text.strip().partition(":")
    try:
        if not rest and kind not in ("constant", "uniform", "lognormal"):
            return ConstantLatency(ms=float(kind))
        args = [float(a) for a in rest.split(":")] if rest else []
        if kind == "constant" and len(args) == 1:
            return ConstantLatency(ms=args[0])
        if kind == "uniform" and len(args) == 2:
            return UniformLatency(low_ms=args[0], high_ms=args[1])
        if kind == "lognormal" and len(args) == 2:
            return LognormalLatency(median_ms=args[0], sigma=args[1])
    except ValueError as exc:
        if "could not convert" not in str(exc):
            raise ValueError(f"latency {text!r}: {exc}") from None
    raise ValueError(f"latency {text!r} is not one of {LATENCY_FORMS}")


def parse_samples(text: str, source: str) -> RecordedLatency:
    """Recorded latencies: one number of ms a line (blank lines and `#` comments skipped)."""
    samples: list[float] = []
    for n, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            samples.append(float(value))
        except ValueError:
            raise ValueError(f"{source}:{n}: {value!r} is not a number of ms (write one latency in ms a line)") \
                from None
    return RecordedLatency(samples_ms=tuple(samples), source=source)
