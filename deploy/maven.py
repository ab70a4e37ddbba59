"""Fetch artifacts from Maven Central once into a cache directory keyed by the POM's content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from liqbot.errors import LiqbotError

__all__ = ["MavenError", "fetch"]


class MavenError(LiqbotError):
    """Maven is missing or could not fetch the artifacts."""


def fetch(pom: Path, goal: list[str], out_property: str, *, cache_dir: Path, name: str,
          say: Callable[[str], None] = print) -> Path:
    """Run `mvn -f pom <goal> -D<out_property>=<dir>` once; later calls return the cached dir at once."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    target = cache_dir / f"{name}-{digest}"
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError("Maven (`mvn`) is not on PATH; install it (apt-get install maven) and retry")
    say(f"fetching {name} from Maven Central into {target} (once) ...")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(pom), *goal, f"-D{out_property}={partial}"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise MavenError(f"mvn failed with code {run.returncode}; is Maven Central reachable?\n"
                         f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
    (partial / ".complete").write_text(" ".join(sorted(p.name for p in partial.iterdir())))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
