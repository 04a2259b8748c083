#!/usr/bin/env bash
# Creates .venv and installs the harness with the local backend, resolved in ONE pip command
# against the lock file (constraints.txt): azure-ai-ml and azureml-inference-server-http must
# resolve together or the inference server breaks (see pip check).
set -euo pipefail
cd "$(dirname "$0")/.."
# Re-running `venv` on an existing one reinstalls pip (about 6 s of CPU, a minute on a busy
# machine): a second run with nothing changed only compares the stamp.
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.harness-installed
want=$(sha256sum constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
  # First the lock's pip: Python 3.11's bundled pip (23.2) needs about twice as long to pick
  # the files out of the index pages (benchmarks/setup_time.py prints both).
  "${pip[@]}" pip
  # --no-compile: pip byte-compiles every module of every package (19,000 files, about a
  # minute of one core); Python compiles the fifth that the harness imports on first use
  # and keeps the result, so the first run pays a few seconds once instead.
  "${pip[@]}" --no-compile -e ".[local,dev]"
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
