"""Fault injection on real local runs (``pytest -m faults``): slow, so not part of ``-m unit``.

Every test here starts the e2e suite on the local backend in a subprocess and hurts it the
way CI, a terminal or the machine would: signals, SIGKILL, a dead server, a stale state file,
a sweep during the run, two workers on a fresh workspace.
"""

from __future__ import annotations
