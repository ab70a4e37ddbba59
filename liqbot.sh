#!/usr/bin/env bash
# Quick start on a fresh machine: sets up everything, then runs `liqbot "$@"`.
#   ./liqbot.sh pipeline    the main job (Kafka + registry from Maven Central; the real captures through ingest,
#                           the agents and the sink into ClickHouse, then a summary from ClickHouse)
#   ./liqbot.sh test        the test suite (real broker and registry started by the tests themselves)
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} (apt-get) ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "error: please install ${need_apt[*]} (Java 17+ and Maven fetch the Kafka broker)" >&2
    exit 2
  fi
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "error: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }

# (Re)install when pyproject.toml changed since the last install.
if [ ! -x .venv/bin/liqbot ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setting up .venv (pip install -e '.[dev]') ..." >&2
  [ -d .venv ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >&2
  .venv/bin/pip install -q -e '.[dev]' >&2
  touch .venv/.installed
fi

# The compiled core (core/, Rust via maturin): (re)built when its sources changed.
native=(core/src core/Cargo.toml core/Cargo.lock core/liqbot_core.pyi)
if [ ! -f .venv/.native-installed ] || [ -n "$(find "${native[@]}" -newer .venv/.native-installed)" ]; then
  command -v cargo >/dev/null 2>&1 || {
    echo "error: Rust's cargo is needed to build core (install it with rustup: https://rustup.rs)" >&2
    exit 2; }
  echo "building core (cargo, release) ..." >&2
  .venv/bin/pip install -q ./core >&2
  touch .venv/.native-installed
fi
exec .venv/bin/liqbot "$@"
