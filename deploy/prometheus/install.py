"""Debian's `prometheus` package unpacked into the project's cache, so that its daemon is never started.

`apt-get install prometheus` would run the package's maintainer scripts, which start a server on 0.0.0.0:9090.
`apt-get download` plus `dpkg-deb -x` only unpacks the files: nothing runs, nothing is installed system-wide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liqbot.config import BrokerSettings, Settings
from liqbot.errors import LiqbotError

__all__ = ["PACKAGE", "PrometheusInstallError", "PrometheusTools", "tools"]

PACKAGE = "prometheus"  # Debian 12 (bookworm) ships 2.42
_CACHE_NAME = "prometheus-deb"


class PrometheusInstallError(LiqbotError):
    """The Debian package could not be downloaded or unpacked."""


@dataclass(frozen=True)
class PrometheusTools:
    """The unpacked binaries and the package version they came from."""

    prometheus: Path
    promtool: Path
    version: str


def tools(cache_dir: Path = BrokerSettings.cache_dir, say: Callable[[str], None] = print) -> PrometheusTools:
    """The cached `prometheus` and `promtool`; downloads and unpacks the .deb on first use."""
    target = cache_dir / _CACHE_NAME
    marker = target / ".complete"
    if not marker.exists():
        _unpack_into(target, say)
    return PrometheusTools(prometheus=target / "usr/bin/prometheus", promtool=target / "usr/bin/promtool",
                           version=marker.read_text().strip())


def _unpack_into(target: Path, say: Callable[[str], None]) -> None:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise PrometheusInstallError(
                f"`{tool}` is not on PATH: promtool and prometheus come from Debian's `{PACKAGE}` package (2.42), "
                "so this needs a Debian or Ubuntu machine with apt")
    say(f"fetching Debian's {PACKAGE} package into {target} (once, unpacked only: no daemon is started) ...")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as download_dir:
        deb = _download(Path(download_dir))
        _run(["dpkg-deb", "-x", str(deb), str(partial)], "unpacking the package")
        version = _run(["dpkg-deb", "-f", str(deb), "Version"], "reading the package version").strip()
    for binary in ("prometheus", "promtool"):
        if not (partial / "usr/bin" / binary).is_file():
            raise PrometheusInstallError(f"the {PACKAGE} package {version} has no usr/bin/{binary}")
    (partial / ".complete").write_text(version + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def _download(into: Path) -> Path:
    """`apt-get download` into `into`; refreshes the package lists once when apt does not know the package."""
    try:
        _run(["apt-get", "download", "-q", PACKAGE], "apt-get download", cwd=into)
    except PrometheusInstallError:
        if os.geteuid() != 0:
            raise PrometheusInstallError(
                f"apt-get could not download {PACKAGE}; the package lists may be missing: run "
                f"`sudo apt-get update` and retry") from None
        _run(["apt-get", "update", "-q"], "apt-get update")
        _run(["apt-get", "download", "-q", PACKAGE], "apt-get download", cwd=into)
    debs = sorted(into.glob(f"{PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise PrometheusInstallError(f"apt-get download left {[d.name for d in debs]} in {into}, expected one .deb")
    return debs[0]


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    # apt sandboxes downloads as the `_apt` user; a private temp dir is not theirs, hence apt's harmless
    # "unsandboxed as root" notice on stderr, which only the failure message shows
    run = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd,
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if run.returncode != 0:
        raise PrometheusInstallError(f"{what} failed with code {run.returncode}: {run.stdout[-1500:]}"
                                     f"{run.stderr[-1500:]}")
    return run.stdout


if __name__ == "__main__":  # the set-up step: `python -m deploy.prometheus.install`
    found = tools(Settings.from_env().broker.cache_dir, say=lambda line: print(line, file=sys.stderr))
    print(f"prometheus {found.version}\n{found.prometheus}\n{found.promtool}")
