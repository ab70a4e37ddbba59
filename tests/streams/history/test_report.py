"""`liqbot backtest --report`: the report of a backtest of the SYNTHETIC wick scenario (which trades) and of the
real capture (which places no order), each opened in headless Chromium (Debian's `chromium`, which `.ci/run`
installs): its charts are drawn and the page logs nothing to the console."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client
from PIL import Image

from liqbot.backtest_command import run_backtest
from streams.history.backtest import BacktestConfig, replay
from streams.history.report import MIN_TRADES, figures_of
from streams.history.results import manifest_of
from streams.history.store import connect
from tests.streams.history.conftest import LandedHistory
from tests.streams.history.test_backtest import REAL, SCENARIO
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.serving import ServedModel

EQUITY_BLUE = (0x1F, 0x5F, 0xA8)  # the equity line's and the PnL bars' colour in streams/history/report.py


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]  # Chromium's CONSOLE log lines: anything the page said, errors included
    screenshot: Path


def _chromium(*args: str, timeout_s: float = 90) -> tuple[str, str]:
    """Headless Chromium, stopped by its PID (its process group) if it hangs; its stdout and stderr."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's `chromium` is not installed: `apt-get install -y chromium` (.ci/run does it)")
    process = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                                "--v=0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, err[-2000:]
    return out, err


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def render(page: Path, tmp_path: Path) -> Rendered:
    profile = tmp_path / f"chromium-{page.stem}"
    dom, err = _chromium(f"--user-data-dir={profile}", "--dump-dom", page.as_uri())
    shot = tmp_path / f"{page.stem}-screen.png"
    _, shot_err = _chromium(f"--user-data-dir={profile}", "--window-size=1280,2400", f"--screenshot={shot}",
                            "--hide-scrollbars", page.as_uri())
    return Rendered(dom, _console(err) + _console(shot_err), shot)


def _blue_pixels(png: Path) -> int:
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(EQUITY_BLUE)).max(axis=2) < 40).sum())


def _assert_renders(html: Path, tmp_path: Path) -> Rendered:
    """The page as Chromium draws it: three charts in the DOM, drawn on screen, and not one console line."""
    page = render(html, tmp_path)
    assert page.console == [], page.console
    charts = re.findall(r"<figure><svg.*?</svg>\s*</figure>", page.dom, re.S)
    assert len(charts) == 3 and all("<path" in chart for chart in charts)
    assert not re.search(r"""(src|href)=["'](https?:)?//|@import|<link|<script""", page.dom)  # nothing fetched
    assert _blue_pixels(page.screenshot) > 500  # the equity line (and bars) drawn, not only present
    png = html.with_suffix(".png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 200
    assert _blue_pixels(png) > 200
    return page


def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The negative control: a page that logs and throws shows up in the lines the report tests require empty."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    console = render(bad, tmp_path).console
    assert any("boom" in line for line in console) and any("Uncaught ReferenceError" in line for line in console)


def test_the_wick_scenario_report_shows_its_trades_and_says_it_is_synthetic(
        landed_history: LandedHistory, tmp_path: Path) -> None:
    out = tmp_path / "wick" / "out.html"
    summary = run_backtest(landed_history.settings, SCENARIO, models=str(SCENARIO_REGISTRY), run="report-wick",
                           report=out)
    page = _assert_renders(out, tmp_path)
    assert "SYNTHETIC data: venue 'synthetic'" in page.dom and "SYNTHETIC model" in page.dom
    assert f"the rule is at least {MIN_TRADES} closed trades and a span of at least one day" in page.dom
    assert "No trades" not in page.dom
    for named in ("WICKUSDT, SPIKEUSDT, DIPUSDT", "'wick.'", "report-wick", str(summary["result_hash"]),
                  ModelRegistry(SCENARIO_REGISTRY).current(), "2026-01-01T01:00:00.000Z"):
        assert named in page.dom, named
    trades = page.dom.split("<h2>Trades</h2>")[1]
    entries = trades.count("<tr>") - 1  # less the header
    closed = entries - trades.count("<td>open</td>")
    assert entries > 0 and entries + closed == summary["fills"]  # every fill is an entry or its exit
    assert not re.search(r"<td>[^<]*(nan|inf)[^<]*</td>", page.dom, re.I)


def test_the_real_capture_report_renders_and_says_there_are_no_trades(landed_history: LandedHistory,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "real" / "out.html"
    summary = run_backtest(landed_history.settings, REAL, run="report-real", report=out)
    assert summary["fills"] == 0
    page = _assert_renders(out, tmp_path)
    assert "No trades: no order filled in this span" in page.dom and "SYNTHETIC" not in page.dom
    assert "Too short to mean anything: 0 closed trades" in page.dom
    assert "BTCUSDT, ETHUSDT" in page.dom and "'real.'" in page.dom and str(summary["result_hash"]) in page.dom
    # three years of flat equity: no dispersion, so no Sharpe or Sortino, rather than NaN
    assert re.search(r"Sharpe \(annualised\)</td><td>none", page.dom)
    assert not re.search(r"<td>[^<]*(nan|inf)[^<]*</td>", page.dom, re.I)


@pytest.fixture(scope="module")
def client(landed_history: LandedHistory) -> Iterator[Client]:
    made = connect(landed_history.settings)
    yield made
    made.close()


def test_the_trades_account_for_every_fee_and_the_run_s_pnl(client: Client) -> None:
    result = replay(client, BacktestConfig(span=SCENARIO), ServedModel(ModelRegistry(SCENARIO_REGISTRY)))
    figures = figures_of(manifest_of("report-figures", result), result, synthetic_model=True)
    out = result.outputs
    assert len(figures.trades) + len(figures.closed) == len(out.fills)
    assert sum(a.intents for a in figures.arms) == len(out.intents)
    assert sum(a.fills for a in figures.arms) == len(figures.trades)
    assert math.isclose(sum(t.fees for t in figures.trades), result.fees)
    if len(figures.closed) == len(figures.trades):  # nothing left open: the trades' PnL is the run's
        pnl = sum(t.net_pnl or 0.0 for t in figures.trades) - result.funding
        assert math.isclose(pnl, result.net_pnl, abs_tol=1e-6)
    assert figures.equity[0] == figures.capital and figures.times_ns[-1] == SCENARIO.to_ns
    assert figures.returns == [] and figures.sharpe is None and figures.sortino is None  # 15 minutes: no whole day
