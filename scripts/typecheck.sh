#!/usr/bin/env bash
# mypy strict over the package, the benchmarks and every test folder. Each test folder is its
# own invocation: they all have a conftest.py and import their helpers by module name.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/mypy
MYPYPATH=tests/unit .venv/bin/mypy tests/unit benchmarks
.venv/bin/mypy tests/e2e
MYPYPATH=tests/faults .venv/bin/mypy tests/faults
