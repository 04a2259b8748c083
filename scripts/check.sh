#!/usr/bin/env bash
# The quick local gate: what .ci/run checks first (lint, format, types, the unit suite), on the
# existing .venv and without the slow suites. Run it before each commit; `.ci/run` stays the
# full gate (fresh install, e2e twice, faults, sweep).
set -euo pipefail
cd "$(dirname "$0")/.."
export HARNESS_WORKSPACE="${HARNESS_WORKSPACE:-$PWD/.harness/workspace}"
.venv/bin/ruff check harness tests benchmarks tools
.venv/bin/ruff format --check harness tests benchmarks tools
scripts/typecheck.sh
.venv/bin/python -m pytest -m unit -n 2 -q -p no:cacheprovider "$@"
