"""How long ``scripts/setup.sh`` takes on a fresh checkout, where the time goes, and a second run.

A fresh clone of this checkout's HEAD goes to a temporary directory (``--keep`` keeps it), then:
the whole ``scripts/setup.sh`` (the README's first command) and, in the venv it made, its parts
again, each alone: ``python -m venv``, pip's resolution against the lock (``--dry-run``, with
the wheels pip has cached by then, so mostly resolver work) and ``pip check``; and a second
``scripts/setup.sh`` with nothing changed. pip's download cache is the user's: pass
``--no-cache`` for the figure of a machine that never downloaded the wheels (downloads
included). Targets: at most 2 minutes fresh, at most 5 s for the second run.

Run: ``.venv/bin/python benchmarks/setup_time.py [--no-cache] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP = ("-m", "pip", "--disable-pip-version-check")


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-cache", action="store_true", help="no pip download cache")
    parser.add_argument("--keep", action="store_true", help="keep the fresh checkout")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="setup-time-"))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    if args.no_cache:
        env["PIP_CACHE_DIR"] = str(scratch / "pip-cache")
    checkout = scratch / "checkout"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
        figures = {"fresh scripts/setup.sh": timed(["scripts/setup.sh"], checkout, env)}
        figures["second run, nothing changed"] = timed(["scripts/setup.sh"], checkout, env)
        python = str(checkout / ".venv" / "bin" / "python")
        figures["  of the fresh run: python -m venv alone"] = timed(
            [sys.executable, "-m", "venv", str(scratch / "venv")], checkout, env
        )
        install = ["install", "--quiet", "-c", "constraints.txt", "-e", ".[local,dev]"]
        figures["  of the fresh run: pip's resolution (--dry-run)"] = timed(
            [python, *PIP, *install, "--dry-run", "--ignore-installed"], checkout, env
        )
        figures["  of the fresh run: pip check"] = timed([python, *PIP, "check"], checkout, env)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"== scripts/setup.sh (load average {load[0]:.1f}, {os.cpu_count()} cores)")
    for name, seconds in figures.items():
        print(f"  {name:<52}{seconds:8.1f} s")
    print("  targets: fresh at most 120 s, second run at most 5 s")
    if args.keep:
        print(f"checkout kept: {checkout}")


if __name__ == "__main__":
    main()
