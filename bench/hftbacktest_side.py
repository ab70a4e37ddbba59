"""The hftbacktest side of `liqbot bench replay`, run by the interpreter of its own environment (`.venv/hftbacktest`).

hftbacktest 2.4 pins numpy < 2.3 and the project needs numpy >= 2.4, so it cannot share the project's environment:
`bench/replay.py` makes one for it (`bench/hftbacktest-requirements.txt`) and runs this file there, as a child
process. It imports nothing of the project.

Given a raw Binance USD-M capture and our decision points (event time ns, side), it (1) converts the capture with
hftbacktest's own `binancefutures.convert`, timed apart; (2) times, from the converted array in memory, a compiled
`wait_next_feed` loop that reads the depth on every feed and, at each decision point, places a post-only (GTX)
limit order at the touch on the decision's side and cancels it `--valid-ms` later (or at the next decision point).
One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from hftbacktest import GTX, LIMIT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.data.utils import binancefutures
from numba import njit

_FEED_TIMEOUT_NS = 60 * 10**9  # a minute without a feed: the loop looks again (wait_next_feed returns 0)
_ENTRY_LATENCY_NS = 10**6  # constant order latency, entry and response: 1 ms
_CONVERT_ROWS = 5_000_000  # the converter's preallocated rows (its default is 100 M; the capture makes ~0.5 M)


@njit(cache=False)  # type: ignore[untyped-decorator]
def _loop(hbt: Any, decision_ns: Any, decision_side: Any, valid_ns: int, lot: float) -> Any:
    """Every feed: the depth's touch read. At each decision point: cancel the open order, place one post-only."""
    feeds = orders = cancels = 0
    touched = 0.0  # a sum of what was read, so the reads cannot be optimised away
    i = 0
    open_id = 0
    cancel_at_ns = 0
    while True:
        got = hbt.wait_next_feed(False, _FEED_TIMEOUT_NS)
        if got == 1:
            break
        if got not in (0, 2):
            return feeds, orders, cancels, touched, got
        if got == 2:
            feeds += 1
        depth = hbt.depth(0)
        bid = depth.best_bid
        ask = depth.best_ask
        touched += bid + ask
        now_ns = hbt.current_timestamp
        if open_id != 0 and now_ns >= cancel_at_ns:
            hbt.cancel(0, open_id, False)
            cancels += 1
            open_id = 0
            hbt.clear_inactive_orders(0)
        while i < decision_ns.shape[0] and decision_ns[i] <= now_ns:
            if open_id != 0:
                hbt.cancel(0, open_id, False)
                cancels += 1
                open_id = 0
                hbt.clear_inactive_orders(0)
            if np.isfinite(bid) and np.isfinite(ask) and bid > 0.0:
                order_id = i + 1
                if decision_side[i] > 0:
                    hbt.submit_buy_order(0, order_id, bid, lot, GTX, LIMIT, False)
                else:
                    hbt.submit_sell_order(0, order_id, ask, lot, GTX, LIMIT, False)
                orders += 1
                open_id = order_id
                cancel_at_ns = now_ns + valid_ns
            i += 1
    return feeds, orders, cancels, touched, 0


def _backtest(data: Any, tick_size: float, lot_size: float) -> Any:
    asset = (BacktestAsset().data(data).linear_asset(1.0)
             .constant_order_latency(_ENTRY_LATENCY_NS, _ENTRY_LATENCY_NS)
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(0.0002, 0.00055).tick_size(tick_size).lot_size(lot_size)
             .last_trades_capacity(0))
    return HashMapMarketDepthBacktest([asset])


def run(capture: Path, decisions: list[tuple[int, int]], *, valid_ms: int, tick_size: float, lot_size: float,
        warmup: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-replay-hftbacktest-") as tmp:
        start = time.perf_counter()
        data = binancefutures.convert(str(capture), output_filename=str(Path(tmp) / "capture.npz"),
                                      buffer_size=_CONVERT_ROWS)
        convert_s = time.perf_counter() - start
    decision_ns = np.array([ts for ts, _ in decisions], dtype=np.int64)
    decision_side = np.array([side for _, side in decisions], dtype=np.int8)
    compile_s = 0.0
    if warmup:  # numba compiles `_loop` on its first call: on a short prefix of the data, timed apart
        start = time.perf_counter()
        head = data[:1000].copy()
        hbt = _backtest(head, tick_size, lot_size)
        _loop(hbt, decision_ns[:0], decision_side[:0], valid_ms * 10**6, lot_size)
        hbt.close()
        del hbt, head  # the backtest held a raw pointer to `head` until close()
        compile_s = time.perf_counter() - start
    hbt = _backtest(data, tick_size, lot_size)  # `data` stays referenced until close(): the backtest points into it
    start = time.perf_counter()
    feeds, orders, cancels, touched, error = _loop(hbt, decision_ns, decision_side, valid_ms * 10**6, lot_size)
    run_s = time.perf_counter() - start
    hbt.close()
    span_s = (int(data["local_ts"][-1]) - int(data["local_ts"][0])) / 1e9 if len(data) else 0.0
    return {"convert_s": convert_s, "events": len(data), "run_s": run_s, "compile_s": compile_s, "feeds": feeds,
            "orders": orders, "cancels": cancels, "decision_points": len(decisions), "error": error,
            "touched_finite": bool(np.isfinite(touched)), "span_s": span_s}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hftbacktest_side")
    parser.add_argument("capture", type=Path, help="a raw Binance USD-M capture: <local ns> <combined-stream JSON>")
    parser.add_argument("--decisions", type=Path, required=True,
                        help="JSON: [[event time ns, side (+1 buy, -1 sell)], ...], in time order")
    parser.add_argument("--valid-ms", type=int, default=10_000, help="an order's life before it is cancelled")
    parser.add_argument("--tick-size", type=float, default=0.1)
    parser.add_argument("--lot-size", type=float, default=0.001)
    parser.add_argument("--no-warmup", action="store_true", help="time numba's compile inside the run")
    args = parser.parse_args(argv)
    decisions = [(int(ts), int(side)) for ts, side in json.loads(args.decisions.read_text())]
    result = run(args.capture, decisions, valid_ms=args.valid_ms, tick_size=args.tick_size, lot_size=args.lot_size,
                 warmup=not args.no_warmup)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
