#!/usr/bin/env bash
# mypy strict over the package, the tests (one package: tests/, with their support in
# tests/support) and the benchmarks, in one run (pyproject.toml's [tool.mypy] files).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/mypy
