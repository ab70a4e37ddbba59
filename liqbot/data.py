"""Where the real exchange captures live: ../shared/data beside the repository (read-only, never copied)."""

from pathlib import Path

__all__ = ["BINANCE_CAPTURE", "BYBIT_CAPTURE", "LIQUIDATION_FRAMES", "REPO", "SHARED_DATA"]

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
BYBIT_CAPTURE = SHARED_DATA / "bybit" / "bybit_v5_linear_2026-08-09_44s.jsonl.zst"
LIQUIDATION_FRAMES = SHARED_DATA / "bybit" / "allLiquidation_frames.jsonl"
BINANCE_CAPTURE = SHARED_DATA / "binance" / "binance_usdm_btcusdt_2024-08-08_6min.gz"
