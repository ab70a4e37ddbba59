"""The shared ingest path: capture formats, dry runs, repeats, and mutated real frames all accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqbot.data import BINANCE_CAPTURE
from schemas.records import AvroRecord
from streams.bybit.parse import BybitPublicParser
from streams.capture import read_capture
from streams.ingest import CountingSink, Ingestor
from streams.serde import SingleObjectSerde


def _dry_run(*files: str, venue: str = "bybit") -> dict[str, int]:
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "replay-capture", "--dry-run", "--venue", venue,
                          *files], capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    result: dict[str, int] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_dry_run_of_the_real_bybit_captures(bybit_capture: Path, liquidation_frames: Path) -> None:
    assert _dry_run(str(bybit_capture), str(liquidation_frames)) == {
        "frames": 3233, "records": 6844, "errors": 0, "gaps": 0}


def test_dry_run_of_the_real_binance_capture() -> None:
    assert _dry_run(str(BINANCE_CAPTURE), venue="binance") == {
        "frames": 93954, "records": 100498, "errors": 0, "gaps": 0}


def test_every_line_format_and_bad_lines_are_counted(tmp_path: Path, liquidation_frames: Path) -> None:
    frames = liquidation_frames.read_text().splitlines()
    recorder = json.dumps({"t": "recv", "conn": "c", "ts": 1791565601.6, "data": frames[1]})
    capture = tmp_path / "mixed.txt"
    capture.write_text("\n".join([
        f"1791091285600000000 {frames[0]}",  # receive time in ns
        recorder,  # recorder JSON line
        f"1786014947.412: {frames[2]}",  # receive time in seconds, with a colon
        frames[3],  # a raw frame, no receive time
        "hello world",  # not a frame at all
        f"1786014947.412 {frames[2][:40]}",  # truncated frame
    ]) + "\n")
    parsed = list(read_capture(capture))
    assert [f.kind for f in parsed] == ["recv", "recv", "recv", "recv", "invalid", "recv"]
    assert [f.ts_recv_ns for f in parsed[:3]] == [1791091285600000000, 1791565601600000000, 1786014947412000000]
    assert parsed[4].error == "line is neither a JSON frame nor '<receive time> <frame>'"
    assert _dry_run(str(capture)) == {"frames": 6, "records": 5, "errors": 2, "gaps": 0}


def test_exact_repeat_of_a_liquidation_frame_is_dropped(liquidation_frames: Path) -> None:
    frames = liquidation_frames.read_text().splitlines()
    ingestor = Ingestor(CountingSink())
    parser = BybitPublicParser()
    for frame in [frames[0], frames[1], frames[1], frames[2], frames[0]]:
        ingestor.on_frame(parser, frame, 0, "test")
    assert ingestor.stats.repeated_frames == 2 and len(ingestor.stats.frames) == 2
    assert ingestor.stats.frames == {"liquidation": 3, "repeated": 2}


@dataclass
class EncodingSink(CountingSink):
    """Encodes every record as Kafka would: a record that does not fit its schema raises SerdeError."""

    serde: SingleObjectSerde = field(default_factory=SingleObjectSerde)

    def send_all(self, records: list[AvroRecord]) -> None:
        for record in records:
            self.serde.encode("t", record)
        self.records.extend(records)


_REAL: list[str] = []


def _real_frames() -> list[str]:
    if not _REAL:
        from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES  # noqa: PLC0415 (module-level cache)

        _REAL.extend(f.data for f in read_capture(BYBIT_CAPTURE) if '"topic"' in f.data and f.venue == "bybit-linear")
        _REAL.extend(LIQUIDATION_FRAMES.read_text().splitlines())
    return _REAL


@st.composite
def mutated_frame(draw: st.DrawFn) -> str:
    """A real frame, cut, spliced with junk, or with one JSON value swapped for another type."""
    frame = draw(st.sampled_from(_real_frames()))
    how = draw(st.sampled_from(["cut", "junk", "swap"]))
    if how == "cut":
        return frame[: draw(st.integers(0, len(frame)))]
    if how == "junk":
        at = draw(st.integers(0, len(frame)))
        return frame[:at] + draw(st.text(max_size=8)) + frame[at:]
    obj = json.loads(frame)
    target = obj["data"][0] if isinstance(obj.get("data"), list) and obj["data"] else obj.get("data", obj)
    if isinstance(target, dict) and target:
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
                                     st.lists(st.integers(), max_size=2)))
    return json.dumps(obj)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_frame(), min_size=1, max_size=20))
def test_mutated_real_frames_never_crash_and_are_all_accounted_for(frames: list[str]) -> None:
    sink = EncodingSink()
    ingestor = Ingestor(sink)
    parser = BybitPublicParser()
    for frame in frames:
        ingestor.on_frame(parser, frame, 1, "fuzz")
    stats = ingestor.stats
    assert sum(stats.frames.values()) == len(frames)  # each frame: a kind, "repeated" or "error"
    assert stats.internal_errors == 0  # every bad frame was recognised as bad input, not as a crash
    assert stats.errors == stats.frames["error"]
    assert sum(stats.records.values()) == len(sink.records)  # nothing sent that failed its schema
