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
  # -qq: pip 26 echoes setuptools' notes on editable installs; errors still show, and pip
  # check below reports any broken requirement.
  "${pip[@]}" --quiet --no-compile -e ".[local,dev]"
  # pip byte-compiles the 19,000 modules one at a time (about a minute); compileall does it on
  # every core instead. Compiled here, not on first import: where PYTHONDONTWRITEBYTECODE is
  # set (this project's machine sets it) nothing would ever be kept, and each process would
  # compile torch and transformers again (20 s instead of 9 s). Like pip, it skips the few
  # modules written for a newer Python (torch's py312 test helpers), so its exit status is
  # not the setup's.
  .venv/bin/python -m compileall -qq -j 0 .venv/lib/python3*/site-packages || true
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
# The project's own code, compiled on every run (it changes with every checkout; compileall
# and pytest only redo what changed, under a second): the harness for the job and server
# processes, and the tests as pytest's assertion rewriting leaves them, which only pytest
# writes, while collecting. Where PYTHONDONTWRITEBYTECODE is set each pytest process would
# otherwise rewrite and compile all 130 test modules again: 1 s of each xdist worker's start.
# The collection runs in a clean environment: the user's HARNESS_* settings are the test
# run's to judge, not the setup's (and it writes bytecode, whatever the caller's setting).
.venv/bin/python -m compileall -qq -j 0 harness benchmarks tools conftest.py
env -i HOME="$HOME" PATH="$PATH" .venv/bin/python -m pytest --collect-only -qq \
  -p no:cacheprovider >/dev/null ||
  echo "setup: collecting the tests failed (the test run says why); they run uncompiled" >&2
